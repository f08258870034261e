"""metrics + manifest → report.md and its plots: plain Markdown tables, figures to 4 decimals.

Reports are aggregates: no file names, no images; unparsed answers are quoted as
text only, shortened.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import astuple
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from emoprobe.backends.server_support import image_rule, support_for_text
from emoprobe.backends.weights import quantization_scope
from emoprobe.files import write_atomic
from emoprobe.reporting.paper import PaperResult, paper_result_for
from emoprobe.reporting.png_stamp import plot_stamp, stamp_of, stamped
from emoprobe.results import alarms as alarm_kinds
from emoprobe.results.alarms import Alarm
from emoprobe.results.manifest import Manifest, ModelRecord
from emoprobe.results.metrics import Metrics
from emoprobe.results.predictions import (
    NO_LABEL_STATUSES,
    OK,
    SCORED_STATUSES,
    STATUSES,
    UNANSWERED_STATUSES,
    UNPARSED_STATUS,
    UNREADABLE,
)
from emoprobe.results.rundir import RunDir
from emoprobe.results.speed import request_costs, speed_summary
from emoprobe.task.parse import synonym_used

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")
REPORT = "report.md"
QUOTED_ANSWERS = 5
QUOTE_LENGTH = 80
UNPARSED_RULE = (
    "An answer that names no label (or several without a clear choice) is `unparsed`: it counts as "
    "a wrong prediction and stays in every denominator, as do the other answers without a label: "
    "`refused` (the model declined), `truncated` (cut off at the length limit before a label) and "
    "`empty_after_thinking` (only thinking text, no answer); all of them fall in the confusion "
    "matrix's *unparsed* column. Images without an answer are left out of the scores and counted: "
    "`unreadable` (the image cannot be used), `not_in_cache` (an offline run had no cached answer; "
    "a run without --offline answers them) and `failed` (the request failed after its retries; no "
    "row is written, re-running retries them)."
)
STATUS_NAMES = {status: status.replace("_", " ") for status in STATUSES}


def status_counts(metrics: Metrics) -> str:
    """The statuses as one line: unparsed and unreadable always, the others where any."""
    return "  ".join(
        f"{STATUS_NAMES[status]} {metrics.statuses.get(status, 0)}"
        for status in STATUSES
        if status != OK
        and (metrics.statuses.get(status) or status in (UNPARSED_STATUS, UNREADABLE))
    )


class Shown(float):
    """A float shown with a fixed number of decimals, and its sign if `signed`."""

    decimals: int
    signed: bool

    def __new__(cls, value: float, decimals: int = 4, signed: bool = False) -> Shown:
        shown = super().__new__(cls, value)
        shown.decimals, shown.signed = decimals, signed
        return shown


class PValue(float):
    """A p-value: 4 decimals, or two significant digits below 0.0001 (never 0.0000)."""


def signed(value: float, decimals: int = 4) -> Shown:
    """A difference: shown with its sign (+0.0123)."""
    return Shown(value, decimals, signed=True)


def fixed(value: float | None, decimals: int) -> Shown | None:
    """A figure to `decimals` decimals: two for the paper's per-class figures, fewer for speeds."""
    return None if value is None else Shown(value, decimals)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; numeric columns right-aligned."""
    align = [
        "---:"
        if rows and all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
        else "---"
        for i in range(len(header))
    ]
    lines = [[_cell(name) for name in header], align, *([_cell(v) for v in row] for row in rows)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def column_table(columns: Sequence[tuple[str, Callable[[T], Any]]], items: Iterable[T]) -> str:
    """`table` of `items`, one row each: a column is its header and how to read its value."""
    rows = [[read(item) for _, read in columns] for item in items]
    return table([name for name, _ in columns], rows)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, PValue):
        return f"{value:.4f}" if value >= 0.0001 or float(value) == 0 else f"{value:.1e}"
    if isinstance(value, Shown):
        return f"{value:{'+' if value.signed else ''}.{value.decimals}f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, Code):
        return "`" + " ".join(value.replace("`", "'").split()).replace("|", "\\|") + "`"
    return inert(str(value)).replace("|", "\\|")


class Code(str):
    """A table cell shown as a code span (an answer quoted as the model gave it)."""


_MARKUP = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "\\`"})
_ESCAPING_BACKSLASH = re.compile(r"\\(?=[!-/:-@\[-`{-~])")  # one that would escape the next


def inert(text: str) -> str:
    """Text from a server, a dataset or a file, shown as itself in Markdown: one line,
    no HTML, no links, no code spans (what breaks a report or runs in a viewer)."""
    flat = _ESCAPING_BACKSLASH.sub(r"\\\\", " ".join(text.split()))
    return flat.translate(_MARKUP).replace("](", "]\\(")


def figure(value: float | None) -> str:
    """A figure to 4 decimals, or – when there is none."""
    return _cell(None if value is None else float(value))


def interval(bounds: Sequence[float] | None) -> str:
    return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]" if bounds else "–"


def write_report(
    folder: Path,
    metrics: Metrics,
    manifest: Manifest,
    predictions: pd.DataFrame,
    *,
    keep_plots: bool = False,
) -> Path:
    """Write the plots and report.md of one run into `folder`; return report.md's path."""
    subject = f"{manifest.model.name or '?'} on {dataset_name(manifest)}"
    plots = write_run_plots(folder, metrics, paper_for(manifest), subject, keep=keep_plots)
    path = folder / REPORT
    write_atomic(path, render_report(metrics, manifest, predictions, plots))
    return path


def rebuild_report(folder: Path, *, keep_plots: bool = False) -> Metrics:
    """metrics.json, the plots and report.md of a run folder from its predictions.csv and
    manifest.json alone (no server, no cache), under the run's lock; `keep_plots`: keep
    the plots already drawn from the same figures (`write_run_plots`)."""
    rundir = RunDir(folder)
    with rundir.rebuilding() as run:
        metrics = rundir.write_metrics(run)
        write_report(rundir.path, metrics, run.manifest, run.predictions, keep_plots=keep_plots)
    return metrics


def write_run_plots(
    folder: Path,
    metrics: Metrics,
    paper: PaperResult | None,
    subject: str = "",
    *,
    keep: bool = False,
) -> dict[str, str]:
    """{what: PNG file name} of the plots written beside the report ({} if none). With
    `keep`, plots whose stamp says they were drawn from these very figures, by this
    plotting code, are left as they are (`png_stamp`): the same bytes, not drawn again."""
    if not metrics.n_scored:
        return {}
    names = {"confusion": "confusion_matrix.png", "per_class": "per_class_f1.png"}
    if metrics.scores:
        names["reliability"] = "reliability.png"
    stamp = plot_stamp(metrics.to_json(), repr(paper), subject)
    if keep and all(stamp_of(folder / name) == stamp for name in names.values()):
        return names
    from emoprobe.reporting import plots

    try:
        drawn = {
            "confusion": plots.confusion_matrix_png(metrics, subject),
            "per_class": plots.per_class_f1_png(metrics, paper, subject),
        }
        if metrics.scores:
            drawn["reliability"] = plots.reliability_png(metrics.scores, subject)
    except ImportError:  # matplotlib is a dependency; a broken install costs the plots only
        return {}
    for what, data in drawn.items():
        write_atomic(folder / names[what], stamped(data, stamp))
    return names


def paper_for(manifest: Manifest) -> PaperResult | None:
    """The paper's figures for this run: same model family and the paper's own prompt."""
    from emoprobe.task.definition import PAPER_TASK

    if manifest.task.prompt_sha256 != PAPER_TASK.prompt_sha256:
        return None
    return paper_result_for(manifest.model.name, manifest.model.family)


def render_report(
    metrics: Metrics,
    manifest: Manifest,
    predictions: pd.DataFrame,
    plots: dict[str, str] | None = None,
) -> str:
    """The whole report.md of one run."""
    plots = plots or {}
    model = manifest.model
    paper = paper_for(manifest)
    sections = [
        f"# emoprobe: {inert(model.name or '?')} on {inert(dataset_name(manifest))}",
        _sample_line(metrics, manifest),
        _status_line(metrics, manifest),
        alarms_section(metrics.alarms),
        f"**Scoring.** {UNPARSED_RULE} Metrics are scikit-learn's.",
        _overall(metrics, model, paper),
        _per_class(metrics, paper, plots.get("per_class")),
        _confusion(metrics, plots.get("confusion")),
        _answers(metrics, manifest, predictions),
        _answer_mode(metrics, manifest, plots.get("reliability")),
        _speed(metrics, manifest, predictions),
        _setup(manifest),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _answer_mode(metrics: Metrics, manifest: Manifest, plot: str | None) -> str:
    """How the answers were asked for; schema failures (json), scores (logprobs)."""
    mode = manifest.answer_mode
    if mode == "json":
        forms = metrics.answer_forms
        invalid = (forms.json_repaired or 0) + (forms.json_invalid or 0) if forms else 0
        return (
            "## Answer mode: json\n\nEach request's `format` was a JSON schema whose one "
            "property, `label`, is an `enum` of the labels. "
            f"Answers that still failed to validate: {invalid} (read by the free-text "
            "parser instead; see *Answers* for how many it could read)."
        )
    scores = metrics.scores
    if mode != "logprobs":
        return ""
    made = (
        "Each label's score is the probability the model gave the tokens that begin it at "
        "the word where the answer names the label the parser chose (its first token's top "
        "20 alternatives), normalised over the labels. Only answers with a label get scores; "
        "an answer whose label has no log-probabilities at that word keeps its prediction "
        "and gets none."
        if manifest.scoring_version and manifest.scoring_version >= 2
        else "These scores were made by an older emoprobe (scoring version 1): at the first "
        "word that begins any label, whatever label the parser chose, so they can disagree "
        "with the prediction. Scores on answers without a label are ignored here; re-run "
        "with this version (new cache entries) for scores that belong to the answer."
    )
    if not scores:
        return f"## Answer mode: logprobs\n\n{made}\n\nNo answer with a label carried scores."
    without = scores.n_ok_without_scores
    coverage = (
        f"ROC-AUC, ECE and the reliability diagram cover **{scores.n_with_scores} of "
        f"{scores.n_answered} answers**: {metrics.n_ok} named a label"
        + (f" ({without} of them without scores)" if without else "")
        + f", {metrics.n_unparsed} named none and get no scores."
    )
    current = bool(manifest.scoring_version and manifest.scoring_version >= 2)
    why = (
        " (the other labels' tokens at that word, summed, outweigh the chosen one)"
        if current
        else " (scoring version 1 read them at another word)"
    )
    differs = (
        f" Answers whose top score is not their parsed label: **{scores.n_top_differs}** "
        f"of {scores.n_with_scores}" + (why if scores.n_top_differs else "") + "."
    )
    if scores.top_differs:
        differs += "\n\n" + table(
            ["parsed label → top score", "answers"], list(map(list, scores.top_differs.items()))
        )
    text = (
        f"## Answer mode: logprobs\n\n{made}\n\n{coverage}{differs}\n\n"
        + table(
            ["measure", "value"],
            [
                ["ROC-AUC, one-vs-rest, macro", scores.roc_auc_ovr_macro],
                ["accuracy of the top score", scores.top_score_accuracy],
                ["expected calibration error (10 bins)", scores.ece],
            ],
        )
        + "\n\nROC-AUC per class (– where the scored answers hold no image of it or only it):"
        "\n\n" + table(["class", "ROC-AUC"], list(map(list, scores.roc_auc_ovr.items())))
    )
    if plot:
        text += f"\n\n![Reliability diagram]({plot})"
    return text


def dataset_name(manifest: Manifest) -> str:
    """The dataset folder's (or CSV's) own name, never its full path."""
    root = manifest.dataset.root.rstrip("/\\")
    return re.split(r"[/\\]", root)[-1] or root


def _sample_line(metrics: Metrics, manifest: Manifest) -> str:
    """The sample as asked for and as drawn, per class; a warning where it is short."""
    sample = metrics.sample
    if sample is None:
        return f"**Sample:** {inert(manifest.dataset.sample_text())}."
    asked = (
        f"{sample.per_class} per class requested, seed {sample.seed}"
        if sample.per_class
        else "every image requested"
    )
    drawn = ", ".join(f"{label} {n}" for label, n in sample.drawn.items())
    where = "drawn" if sample.drawn_recorded else "rows in this folder (the draw is not recorded)"
    line = f"**Sample:** {asked}; {where}: {drawn} ({sample.n_drawn} images"
    line += f" of {sample.n_requested} requested)." if sample.n_requested else ")."
    if sample.short:
        short = ", ".join(f"{label} {sample.drawn[label]}" for label in sample.short)
        line += (
            f" **Warning: the sample is short of the request** ({short} of "
            f"{sample.per_class} asked): the dataset has no more images of "
            f"{'this class' if len(sample.short) == 1 else 'these classes'}."
        )
    return line


def _status_line(metrics: Metrics, manifest: Manifest) -> str:
    counts = metrics.statuses
    answered = ", ".join(f"{STATUS_NAMES[s]} {counts.get(s, 0)}" for s in SCORED_STATUSES)
    left_out = ", ".join(f"{STATUS_NAMES[s]} {counts.get(s, 0)}" for s in UNANSWERED_STATUSES)
    line = (
        f"**Images:** {metrics.n} with a row; {metrics.n_scored} scored ({answered}); "
        f"not scored: {left_out} (failed: requests of the last session, without a row)."
    )
    if counts.get("failed"):
        line += " **Incomplete:** re-running the same command retries the failed requests."
    return line


def alarm_text(alarm: Alarm) -> str:
    """One alarm as a sentence."""
    if alarm.kind == alarm_kinds.NEVER_PREDICTED:
        return f"the model never answered *{alarm.subject}*."
    if alarm.kind == alarm_kinds.COLLAPSE:
        return (
            f"class collapse: *{alarm.subject}* takes {alarm.value:.0%} of the predictions "
            f"(alarm above {alarm.threshold:.0%})."
        )
    if alarm.kind == alarm_kinds.STATUS_SHARE:
        return (
            f"{alarm.value:.0%} of the answers are `{alarm.subject}` "
            f"(alarm above {alarm.threshold:.0%})."
        )
    if alarm.kind == alarm_kinds.NOT_ABOVE_BASELINE:
        return (
            f"accuracy {alarm.value:.4f} is not above the majority-class baseline "
            f"{alarm.threshold:.4f} (always answering *{alarm.subject}*)."
        )
    if alarm.kind == alarm_kinds.SHORT_SAMPLE:
        return f"only {alarm.value:g} images of *{alarm.subject}* drawn, {alarm.threshold:g} asked."
    return f"{alarm.kind}: {alarm.subject}."


def alarms_section(alarms: Sequence[Alarm]) -> str:
    """The alarms as a list under a bold heading, or one line saying none was raised."""
    if not alarms:
        return (
            "**Alarms:** none (checked: a class never predicted, one class in more than half of "
            f"the predictions, any status without a label above {alarm_kinds.NO_LABEL_SHARE:.0%} "
            "of the answers, accuracy not above the majority-class baseline, a short sample)."
        )
    return "**Alarms:**\n\n" + "\n".join(f"- ⚠ {alarm_text(alarm)}" for alarm in alarms)


def _overall(metrics: Metrics, model: ModelRecord, paper: PaperResult | None) -> str:
    m = metrics
    mine = [m.f1_weighted, m.accuracy, m.precision_weighted, m.recall_weighted]
    rows: list[list[Any]] = [[f"{model.name or 'this run'} (this run)", *mine, m.n_scored]]
    if paper:
        theirs = [paper.f1, paper.accuracy, paper.precision, paper.recall]
        rows.append([f"{paper.model} (paper)", *theirs, paper.images])
        known = [value for value in mine if value is not None]
        if len(known) == len(mine):
            differences = [signed(a - b) for a, b in zip(known, theirs, strict=True)]
            rows.append(["difference (run − paper)", *differences, None])
    text = "## Overall (weighted averages, the paper's Table 1 layout)\n\n"
    text += table(["model", "F1", "Accuracy", "Precision", "Recall", "images"], rows)
    ci = metrics.ci95
    if ci:
        text += (
            f"\n\n95% confidence intervals of this run (percentile bootstrap over its images, "
            f"{ci.resamples:,} resamples, seed {ci.seed}): weighted F1 "
            f"{interval(ci.f1_weighted)}, accuracy {interval(ci.accuracy)}. They show "
            "how much the figures move with the sample of images alone."
        )
    text += (
        f"\n\nMacro averages: F1 {figure(m.f1_macro)}, precision {figure(m.precision_macro)}, "
        f"recall {figure(m.recall_macro)}. Accuracy equals weighted recall, as in the paper."
    )
    if paper:
        text += " " + _paper_caveat(model, paper)
    else:
        text += " The paper tested no model of this family, so no paper row is shown."
    baseline = m.majority_baseline
    text += "\n\n" + table(
        ["beside the paper's figures", "value"],
        [
            ["macro F1", m.f1_macro],
            ["balanced accuracy (mean recall over the classes present)", m.balanced_accuracy],
            ["Cohen's κ against the true labels", m.cohen_kappa],
            [
                "majority-class baseline accuracy"
                + (f" (always *{baseline.label}*)" if baseline else ""),
                baseline.accuracy if baseline else None,
            ],
        ],
    )
    return text


def _paper_caveat(model: ModelRecord, paper: PaperResult) -> str:
    text = (
        f"The paper's row is its own run of {paper.model} on {paper.images:,} OLSFED images "
        "(1,000 per class); it does not say how the model was served or quantized"
    )
    quantization = model.quantization
    text += f" (this run: {inert(quantization)} through Ollama)." if quantization else "."
    size = _size_in_name(model.name)
    if size is not None and paper.parameters_b and abs(size - paper.parameters_b) > 0.5:
        text += (
            f" **Note:** this model is named {size:g}B, the paper's is "
            f"{paper.parameters_b:g}B: same family, different size."
        )
    return text


def _size_in_name(name: str) -> float | None:
    """7 for `qwen2.5vl:7b` or `…:7b-q8_0`; None when the tag names no size."""
    tag = name.rsplit(":", 1)[-1] if ":" in name else ""
    match = re.search(r"(?<![\w.])(\d+(?:\.\d+)?)b(?![a-z])", tag.lower())
    return float(match.group(1)) if match else None


def _per_class(metrics: Metrics, paper: PaperResult | None, plot: str | None) -> str:
    per_class = metrics.per_class
    if not per_class:
        return "## Per class\n\nNo image was scored."
    predicted = metrics.confusion_matrix.predicted()
    header = ["class", "precision", "recall", "F1", "support", "predicted"]
    if paper:
        header += ["paper F1", "F1 − paper"]
    rows = []
    for label, scores in per_class.items():
        row: list[Any] = [label, *astuple(scores), predicted.get(label, 0)]  # precision … support
        if paper:
            theirs = paper.per_class_f1.get(label)
            row += [fixed(theirs, 2), None if theirs is None else signed(scores.f1 - theirs, 2)]
        rows.append(row)
    text = "## Per class\n\n" + table(header, rows)
    text += (
        "\n\n*predicted*: how many times the model gave this label (right or wrong); "
        "precision is 0 where it never did."
    )
    if paper:
        text += (
            " The paper gives per-class F1 to two decimals, in the text only, listed as "
            "confused, distracted, happy, neutral, tired; that order is the paper's."
        )
        for label in sorted(set(paper.per_class_precision) | set(paper.per_class_recall)):
            if label in per_class:
                scores = per_class[label]
                text += (
                    f" For *{label}* it also gives precision "
                    f"{_two(paper.per_class_precision.get(label))} and recall "
                    f"{_two(paper.per_class_recall.get(label))} (this run: "
                    f"{scores.precision:.4f} and {scores.recall:.4f})."
                )
    if plot:
        caption = "Per-class F1, this run" + (" and the paper" if paper else "")
        text += f"\n\n![{caption}]({plot})"
    return text


def _two(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _confusion(metrics: Metrics, plot: str | None) -> str:
    if not metrics.n_scored:
        return ""
    confusion = metrics.confusion_matrix
    labels, columns, matrix = confusion.labels, confusion.columns, confusion.matrix
    header = ["true \\ predicted", *columns]
    counts: list[list[Any]] = [
        [label, *row, sum(row)] for label, row in zip(labels, matrix, strict=True)
    ]
    totals = [sum(column) for column in zip(*matrix, strict=True)]
    counts.append(["**predicted**", *totals, sum(totals)])
    shares = []
    for label, row in zip(labels, matrix, strict=True):
        total = sum(row)
        shares.append([label, *((value / total) if total else None for value in row)])
    text = (
        "## Confusion matrix\n\nRows are the true labels, columns the predictions (*unparsed*: no "
        f"label named).\n\nCounts:\n\n{table([*header, 'total'], counts)}\n\nShare of each row "
        f"(the diagonal is each class's recall):\n\n{table(header, shares)}"
    )
    if plot:
        caption = "Confusion matrix: colour is the share of each row, numbers are counts"
        text += f"\n\n![{caption}]({plot})"
    return text


def _answers(metrics: Metrics, manifest: Manifest, predictions: pd.DataFrame) -> str:
    scored = metrics.n_scored
    counts = metrics.statuses
    lines = ["## Answers", ""]
    no_label = [
        f"{STATUS_NAMES[s]} {counts.get(s, 0)} ({figure(counts.get(s, 0) / scored)})"
        for s in NO_LABEL_STATUSES
        if scored
    ]
    lines.append(
        f"Answers without a label: {metrics.n_unparsed} of {scored} scored answers"
        + (f" ({figure(metrics.n_unparsed / scored)}): {', '.join(no_label)}." if scored else ".")
    )
    lines[-1] += " " + _forms_text(metrics)
    lines += _synonyms(manifest, predictions)
    status, raw = predictions["status"], predictions["raw"]
    quotes = Counter(_shorten(text) for text in raw[status.isin(NO_LABEL_STATUSES)].tolist())
    if quotes:
        lines += ["", "Most frequent answers without a label (shortened):", ""]
        common = quotes.most_common(QUOTED_ANSWERS)
        lines.append(table(["answer", "times"], [[Code(quote), n] for quote, n in common]))
    for kind in UNANSWERED_STATUSES:
        reasons = Counter(predictions["error"][status == kind].tolist())
        if reasons:
            lines += ["", f"Images {STATUS_NAMES[kind]}: {counts.get(kind, 0)}.", ""]
            lines += [table(["reason", "images"], reasons.most_common())]
    return "\n".join(lines)


def _forms_text(metrics: Metrics) -> str:
    """The answers' form, as the answer mode asks for it."""
    forms = metrics.answer_forms
    if forms is None or not forms.answered:
        return ""
    n = forms.answered
    if forms.json_valid is not None:
        return (
            f"JSON answers ({n}): valid per the schema {forms.json_valid} "
            f"({figure(forms.json_valid / n)}), not valid but read by the free-text parser "
            f"{forms.json_repaired}, invalid {forms.json_invalid}."
        )
    bare = forms.exactly_one_label or 0
    return f"Answers that were exactly one label, as the prompt asks: {bare} ({figure(bare / n)})."


def _synonyms(manifest: Manifest, predictions: pd.DataFrame) -> list[str]:
    """Which answers named their label only through a synonym of the task file."""
    synonyms, labels = manifest.task.synonyms, manifest.task.labels
    if not synonyms:
        return []
    ok = predictions[predictions["status"] == OK]
    answers = Counter(zip(ok["raw"].tolist(), ok["prediction"].tolist(), strict=True))
    used: Counter[tuple[str, str]] = Counter()
    for (text, label), times in answers.items():
        if word := synonym_used(text, labels, synonyms):
            used[word, str(label)] += times
    total = sum(used.values())
    text = (
        f"Answers read through a synonym of the task file: {total} of {len(ok)} parsed "
        f"({figure(total / len(ok) if len(ok) else None)})"
    )
    if not used:
        return ["", text + "."]
    rows = [[Code(word), label, n] for (word, label), n in used.most_common()]
    return ["", text + ":", "", table(["synonym", "read as", "answers"], rows)]


def _shorten(text: str) -> str:
    flat = " ".join(text.split()).replace("`", "'") or "(empty answer)"
    return flat if len(flat) <= QUOTE_LENGTH else flat[: QUOTE_LENGTH - 1] + "…"


def _speed(metrics: Metrics, manifest: Manifest, predictions: pd.DataFrame) -> str:
    speed = speed_summary(manifest, metrics.latency_median_s, metrics.latency_p95_s)
    costs = request_costs(predictions)
    rows: list[list[Any]] = [
        ["requests sent (all sessions)", speed.requests],
        ["answers from the cache (not timed)", speed.cache_hits],
        ["images/s while requesting", fixed(speed.images_per_s, 2)],
        [f"median latency (s), {costs.measured} requests", fixed(speed.latency_median_s, 3)],
        ["95th percentile latency (s)", fixed(speed.latency_p95_s, 3)],
        ["generated tokens/s (server timings)", fixed(speed.generated_tokens_per_s, 1)],
        ["prompt tokens/s (server timings)", fixed(speed.prompt_tokens_per_s, 1)],
        ["prompt tokens per image (median; image tokens included)", fixed(costs.prompt_tokens, 0)],
        ["generated tokens per image (median)", fixed(costs.output_tokens, 0)],
        ["prefill ms per image (median, server timings)", fixed(costs.prefill_ms, 1)],
        ["decode ms per image (median, server timings)", fixed(costs.decode_ms, 1)],
        ["model load (s)", fixed(speed.load_s, 2)],
        ["retries (all sessions)", speed.retries],
        ["images whose request failed after its retries (all sessions)", speed.failures],
    ]
    request = manifest.request
    concurrency = request.in_flight or request.concurrency
    note = (
        "\n\nOnly what this run measured: latency is per request as the client saw it, "
        "queueing included"
        + (
            f" ({concurrency} requests in flight{' per host' * bool(request.in_flight)})"
            if concurrency
            else ""
        )
        + "; answers from the cache bring no latency or timings (a folder of an older "
        "emoprobe may hold their first request's latency in predictions.csv: it is left "
        "out here). Ollama counts image tokens within the prompt tokens."
        + (f" In flight: {inert(request.in_flight_reason)}." if request.in_flight_reason else "")
    )
    kinds = [
        [what, kind, n]
        for what, counted in (("retry", speed.retry_kinds), ("failure", speed.failure_kinds))
        for kind, n in counted.items()
    ]
    if kinds:
        note += "\n\nRetries and failures by kind:\n\n" + table(["", "kind", "times"], kinds)
    return (
        "## Speed\n\n"
        + table(["measure", "value"], rows)
        + note
        + _image_size_note(manifest)
        + _hosts(manifest)
    )


def _hosts(manifest: Manifest) -> str:
    """Images and speed per server, when several shared the work."""
    images: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for host in (host for session in manifest.sessions for host in session.hosts):
        images[host.url] += host.images
        errors[host.url] += host.errors
    if len(images) < 2:
        return ""
    wall = sum(s.wall_s for s in manifest.sessions if s.hosts)
    rows = [
        [url, n, fixed(n / wall, 2) if wall else None, errors[url]] for url, n in images.items()
    ]
    return "\n\nServers that shared the work:\n\n" + table(
        ["host", "images", "images/s", "failed requests"], rows
    )


def _image_size_note(manifest: Manifest) -> str:
    """What the images sent cost, and what --max-side saved: pixels, and image tokens by
    the server's rule for the family (server_support), beside the server's own count."""
    sessions = manifest.sessions
    source = sum(s.pixels_source for s in sessions)
    sent = sum(s.pixels_sent for s in sessions)
    images = sum(s.requests for s in sessions)
    if not (source and sent and images):
        return ""
    text = f"\n\nImages sent averaged {sent / images / 1e6:.2f} megapixels"
    if manifest.max_side and sent < source:
        text += (
            f"; `--max-side {manifest.max_side}` cut them from {source / images / 1e6:.2f} "
            f"megapixels: {1 - sent / source:.0%} fewer pixels to encode per image"
        )
    text += "."
    costed = sum(s.images_costed for s in sessions)
    tokens_sent = sum(s.image_tokens_sent for s in sessions)
    tokens_source = sum(s.image_tokens_source for s in sessions)
    model, version = manifest.model, manifest.server.version
    support = support_for_text(version) if manifest.backend == "ollama" else None
    rule = image_rule(model.family, support) if support else ""
    family, shown_version = inert(model.family), inert(version or "")
    if costed and rule:
        text += (
            f" Image tokens by Ollama {shown_version}'s rule for {family} ({rule}): about "
            f"{tokens_sent / costed:,.0f} per image sent ({costed} of {images} requests)"
        )
        if manifest.max_side and tokens_source:
            saved = 1 - tokens_sent / tokens_source
            text += (
                f"; as stored they would cost {tokens_source / costed:,.0f}, so "
                f"`--max-side {manifest.max_side}` saved {saved:.0%} of the image tokens"
            )
        text += "."
    elif rule:
        text += (
            f" Image tokens by Ollama {shown_version}'s rule for {family}: {rule} "
            "(not counted per image in this run)."
        )
    else:
        text += (
            f" Image tokens: no rule for family {family or '(none)'} on "
            f"{'Ollama ' + shown_version if version else 'this server'}; see the server's count."
        )
    prompt = sum(s.prompt_eval_count for s in sessions)
    if prompt:
        text += (
            f" The server counted {prompt / images:,.0f} prompt tokens per request "
            f"(prompt_eval_count, {images} requests), image and text together."
        )
    return text


def _thinking(manifest: Manifest) -> str | None:
    """Whether the model was let think: `think` as sent, for a model that can."""
    capabilities = manifest.model.capabilities
    if "thinking" not in capabilities:
        return "the model cannot think" if capabilities else None
    think = manifest.options.get("think", False)
    return "off (think: false sent)" if think is False else f"on (think: {think})"


def _setup(manifest: Manifest) -> str:
    model = manifest.model
    max_side = manifest.max_side
    rows: list[list[Any]] = [
        ["model", model.name],
        ["family", model.family],
        ["parameters", model.parameter_size],
        ["quantization", model.quantization],
        [
            "weights quantization changes",
            quantization_scope(model.language_weights, model.vision_weights),
        ],
        ["thinking", _thinking(manifest)],
        ["size on disk", f"{model.size_bytes / 1e9:.2f} GB" if model.size_bytes else None],
        ["digest", model.digest[:12] or None],
        ["server", f"Ollama {manifest.server.version or '?'}"],
        ["options", ", ".join(f"{k}={v}" for k, v in manifest.options.items())],
        ["images sent", f"longer side ≤ {max_side} px" if max_side else "as stored"],
        ["prompt sha256", manifest.task.prompt_sha256[:12]],
        ["dataset format", manifest.dataset.format],
        ["sample", manifest.dataset.sample_text()],
        ["started", manifest.created_at],
        ["last updated", manifest.updated_at],
        ["emoprobe", manifest.emoprobe_version],
    ]
    return "## Model and setup\n\n" + table(["", ""], rows)
