"""metrics + manifest → report.md and its plots: plain Markdown tables, figures to 4 decimals.

Reports are aggregates: no file names, no images; unparsed answers are quoted as
text only, shortened.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emoprobe.files import write_atomic
from emoprobe.reporting.paper import PaperResult, paper_result_for
from emoprobe.results.predictions import ERROR, UNPARSED_STATUS, Row

REPORT = "report.md"
QUOTED_ANSWERS = 5
QUOTE_LENGTH = 80
UNPARSED_RULE = (
    "An answer that names no label (or several without a clear choice) is `unparsed`: "
    "it counts as a wrong prediction and stays in every denominator. Unreadable images "
    "(`error` rows) are left out of the scores and counted below."
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
    """A figure shown to `decimals` decimals: two for the paper's per-class figures
    (never 0.6500 for its 0.65), fewer for speeds."""
    return None if value is None else Shown(value, decimals)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; numeric columns right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    align = [
        "---:"
        if rows and all(isinstance(row[i], (int, float)) or row[i] is None for row in rows)
        else "---"
        for i in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, PValue):
        return f"{value:.4f}" if value >= 0.0001 or value == 0 else f"{value:.1e}"
    if isinstance(value, Shown):
        return f"{value:{'+' if value.signed else ''}.{value.decimals}f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def figure(value: float | None) -> str:
    """A figure to 4 decimals, or – when there is none."""
    return _cell(None if value is None else float(value))


def interval(bounds: Sequence[float] | None) -> str:
    return f"[{bounds[0]:.4f}, {bounds[1]:.4f}]" if bounds else "–"


def write_report(
    folder: Path, metrics: dict[str, Any], manifest: dict[str, Any], rows: Sequence[Row]
) -> Path:
    """Write the plots and report.md of one run into `folder`; return report.md's path."""

    paper = paper_for(manifest)
    plots = write_run_plots(folder, metrics, paper)
    path = folder / REPORT
    write_atomic(path, render_report(metrics, manifest, rows, plots))
    return path


def write_run_plots(
    folder: Path, metrics: dict[str, Any], paper: PaperResult | None
) -> dict[str, str]:
    """{what: PNG file name} of the plots written beside the report ({} if none)."""
    if not metrics.get("n_scored"):
        return {}
    from emoprobe.reporting import plots

    try:
        files = {
            "confusion": ("confusion_matrix.png", plots.confusion_matrix_png(metrics)),
            "per_class": ("per_class_f1.png", plots.per_class_f1_png(metrics, paper)),
        }
        if metrics.get("scores"):
            files["reliability"] = ("reliability.png", plots.reliability_png(metrics["scores"]))
    except ImportError:  # matplotlib is a dependency; a broken install costs the plots only
        return {}
    for name, data in files.values():
        write_atomic(folder / name, data)
    return {what: name for what, (name, _) in files.items()}



def paper_for(manifest: dict[str, Any]) -> PaperResult | None:
    """The paper's figures for this run: same model family and the paper's own prompt."""
    from emoprobe.task.definition import PAPER_TASK

    if manifest.get("task", {}).get("prompt_sha256") != PAPER_TASK.prompt_sha256:
        return None
    model = manifest.get("model", {})
    return paper_result_for(model.get("name", ""), model.get("family", ""))


def render_report(
    metrics: dict[str, Any],
    manifest: dict[str, Any],
    rows: Sequence[Row],
    plots: dict[str, str] | None = None,
) -> str:
    """The whole report.md of one run."""
    plots = plots or {}
    model = manifest.get("model", {})
    paper = paper_for(manifest)
    sections = [
        f"# emoprobe: {model.get('name', '?')} on {dataset_name(manifest)}",
        _status_line(metrics, manifest),
        f"**Scoring.** {UNPARSED_RULE} Metrics are scikit-learn's.",
        _overall(metrics, model, paper),
        _per_class(metrics, paper, plots.get("per_class")),
        _confusion(metrics, plots.get("confusion")),
        _answers(metrics, manifest, rows),
        _answer_mode(metrics, manifest, plots.get("reliability")),
        _speed(metrics, manifest),
        _setup(manifest),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _answer_mode(metrics: dict[str, Any], manifest: dict[str, Any], plot: str | None) -> str:
    """How the answers were asked for; schema failures (json), scores (logprobs)."""
    mode = manifest.get("answer_mode", "text")
    if mode == "json":
        invalid = sum(s.get("json_invalid", 0) for s in manifest.get("sessions", []))
        return (
            "## Answer mode: json\n\nEach request's `format` was a JSON schema whose one "
            "property, `label`, is an `enum` of the labels. "
            f"Answers that still failed to validate: {invalid} (read by the free-text "
            "parser instead)."
        )
    scores = metrics.get("scores")
    if mode != "logprobs":
        return ""
    if not scores:
        return "## Answer mode: logprobs\n\nNo answer carried scores for the labels."
    per_class = [[label, value] for label, value in scores["roc_auc_ovr"].items()]
    text = (
        "## Answer mode: logprobs\n\nEach label's score is the probability the model gave "
        "the tokens that begin it at the first answer position that names a label "
        "(top 20 alternatives), normalised over the labels. "
        f"{scores['n_with_scores']} answers carried scores"
        + (f", {scores['n_without_scores']} did not" if scores["n_without_scores"] else "")
        + ".\n\n"
        + table(
            ["measure", "value"],
            [
                ["ROC-AUC, one-vs-rest, macro", scores["roc_auc_ovr_macro"]],
                ["accuracy of the top score", scores["top_score_accuracy"]],
                ["expected calibration error (10 bins)", scores["ece"]],
            ],
        )
        + "\n\nROC-AUC per class (– where the sample has no image of it or only it):\n\n"
        + table(["class", "ROC-AUC"], per_class)
    )
    if plot:
        text += f"\n\n![Reliability diagram]({plot})"
    return text


def dataset_name(manifest: dict[str, Any]) -> str:
    """The dataset folder's (or CSV's) own name, never its full path."""
    root = str(manifest.get("dataset", {}).get("root", "dataset")).rstrip("/\\")
    return re.split(r"[/\\]", root)[-1] or root


def _status_line(metrics: dict[str, Any], manifest: dict[str, Any]) -> str:
    sessions = manifest.get("sessions", [])
    failed = sessions[-1].get("failed", 0) if sessions else 0
    line = (
        f"{metrics['n']} image{'' if metrics['n'] == 1 else 's'}: {metrics['n_scored']} scored "
        f"({metrics['n_ok']} answered with a label, {metrics['n_unparsed']} unparsed), "
        f"{metrics['n_error']} unreadable. Sample: {sample_text(manifest.get('dataset', {}))}."
    )
    if failed:
        line += (
            f" **Incomplete:** {failed} requests failed in the last session; "
            "re-running the same command retries them."
        )
    return line


def _overall(metrics: dict[str, Any], model: dict[str, Any], paper: PaperResult | None) -> str:
    keys = ("f1_weighted", "accuracy", "precision_weighted", "recall_weighted")
    mine = [metrics.get(key) for key in keys]
    rows: list[list[Any]] = [
        [f"{model.get('name', 'this run')} (this run)", *mine, metrics["n_scored"]]
    ]
    if paper:
        theirs = [paper.f1, paper.accuracy, paper.precision, paper.recall]
        rows.append([f"{paper.model} (paper)", *theirs, paper.images])
        if None not in mine:
            differences = [signed(a - b) for a, b in zip(mine, theirs, strict=True)]
            rows.append(["difference (run − paper)", *differences, None])
    text = "## Overall (weighted averages, the paper's Table 1 layout)\n\n"
    text += table(["model", "F1", "Accuracy", "Precision", "Recall", "images"], rows)
    ci = metrics.get("ci95")
    if ci:
        text += (
            f"\n\n95% confidence intervals of this run (percentile bootstrap over its images, "
            f"{ci['resamples']:,} resamples, seed {ci['seed']}): weighted F1 "
            f"{interval(ci['f1_weighted'])}, accuracy {interval(ci['accuracy'])}. They show "
            "how much the figures move with the sample of images alone."
        )
    text += (
        f"\n\nMacro averages: F1 {figure(metrics.get('f1_macro'))}, precision "
        f"{figure(metrics.get('precision_macro'))}, recall {figure(metrics.get('recall_macro'))}."
        " Accuracy equals weighted recall, as in the paper."
    )
    if paper:
        text += " " + _paper_caveat(model, paper)
    else:
        text += " The paper tested no model of this family, so no paper row is shown."
    return text


def _paper_caveat(model: dict[str, Any], paper: PaperResult) -> str:
    text = (
        f"The paper's row is its own run of {paper.model} on {paper.images:,} OLSFED images "
        "(1,000 per class); it does not say how the model was served or quantized"
    )
    quantization = model.get("quantization")
    text += f" (this run: {quantization} through Ollama)." if quantization else "."
    size = _size_in_name(model.get("name", ""))
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


def _per_class(metrics: dict[str, Any], paper: PaperResult | None, plot: str | None) -> str:
    per_class = metrics.get("per_class", {})
    if not per_class:
        return "## Per class\n\nNo image was scored."
    predicted = _predicted_counts(metrics)
    header = ["class", "precision", "recall", "F1", "support", "predicted"]
    if paper:
        header += ["paper F1", "F1 − paper"]
    rows = []
    for label, scores in per_class.items():
        row = [
            label,
            scores["precision"],
            scores["recall"],
            scores["f1"],
            scores["support"],
            predicted.get(label, 0),
        ]
        if paper:
            theirs = paper.per_class_f1.get(label)
            row += [
                fixed(theirs, 2),
                None if theirs is None else signed(scores["f1"] - theirs, 2),
            ]
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
                    f"{scores['precision']:.4f} and {scores['recall']:.4f})."
                )
    if plot:
        caption = "Per-class F1, this run" + (" and the paper" if paper else "")
        text += f"\n\n![{caption}]({plot})"
    return text


def _two(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _predicted_counts(metrics: dict[str, Any]) -> dict[str, int]:
    confusion = metrics["confusion_matrix"]
    totals = [sum(column) for column in zip(*confusion["matrix"], strict=True)]
    return dict(zip(confusion["columns"], totals, strict=False))


def _confusion(metrics: dict[str, Any], plot: str | None) -> str:
    if not metrics.get("n_scored"):
        return ""
    confusion = metrics["confusion_matrix"]
    labels, columns, matrix = confusion["labels"], confusion["columns"], confusion["matrix"]
    header = ["true \\ predicted", *columns]
    counts = [[label, *row, sum(row)] for label, row in zip(labels, matrix, strict=True)]
    totals = [sum(column) for column in zip(*matrix, strict=True)]
    counts.append(["**predicted**", *totals, sum(totals)])
    shares = []
    for label, row in zip(labels, matrix, strict=True):
        total = sum(row)
        shares.append([label, *((value / total) if total else None for value in row)])
    text = (
        "## Confusion matrix\n\nRows are the true labels, columns the predictions "
        "(*unparsed*: no label named).\n\n"
        f"Counts:\n\n{table([*header, 'total'], counts)}\n\n"
        f"Share of each row (the diagonal is each class's recall):\n\n{table(header, shares)}"
    )
    if plot:
        caption = "Confusion matrix: colour is the share of each row, numbers are counts"
        text += f"\n\n![{caption}]({plot})"
    return text


def _answers(metrics: dict[str, Any], manifest: dict[str, Any], rows: Sequence[Row]) -> str:
    scored = metrics["n_scored"]
    rate = metrics["n_unparsed"] / scored if scored else None
    lines = [
        "## Answers",
        "",
        f"Unparsed: {metrics['n_unparsed']} of {scored} scored answers ({figure(rate)}).",
    ]
    labels = {label.casefold() for label in metrics.get("labels", [])}
    bare = sum(
        1
        for row in rows
        if row.status != ERROR and row.raw.strip().rstrip(".!").strip().casefold() in labels
    )
    if scored:
        lines[-1] += (
            f" Answers that were exactly one label, as the prompt asks: {bare} "
            f"({figure(bare / scored)})."
        )
    quotes = Counter(_shorten(row.raw) for row in rows if row.status == UNPARSED_STATUS)
    if quotes:
        lines += ["", "Most frequent unparsed answers (shortened):", ""]
        common = quotes.most_common(QUOTED_ANSWERS)
        lines.append(table(["answer", "times"], [[f"`{quote}`", n] for quote, n in common]))
    reasons = Counter(row.error for row in rows if row.status == ERROR)
    if reasons:
        lines += ["", f"Unreadable images: {metrics['n_error']}.", ""]
        lines += [table(["reason", "images"], reasons.most_common())]
    sessions = manifest.get("sessions", [])
    failed = sum(s.get("failed", 0) for s in sessions)
    if failed:
        lines += [
            "",
            f"Requests that failed after their retries, over all sessions: {failed} "
            "(never written as predictions; re-running the command retries them).",
        ]
    return "\n".join(lines)


def _shorten(text: str) -> str:
    flat = " ".join(text.split()).replace("`", "'") or "(empty answer)"
    return flat if len(flat) <= QUOTE_LENGTH else flat[: QUOTE_LENGTH - 1] + "…"


def speed_summary(manifest: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """A run's speed from the server's timings in every session (cached answers excluded)."""
    sessions = manifest.get("sessions", [])
    requests = sum(s.get("requests", 0) for s in sessions)
    wall = sum(s.get("wall_s", 0.0) for s in sessions if s.get("requests"))
    eval_count = sum(s.get("eval_count", 0) for s in sessions)
    eval_ns = sum(s.get("eval_duration_ns", 0) for s in sessions)
    prompt_count = sum(s.get("prompt_eval_count", 0) for s in sessions)
    prompt_ns = sum(s.get("prompt_eval_duration_ns", 0) for s in sessions)
    loads = [s["load_s"] for s in sessions if s.get("load_s") is not None]
    return {
        "requests": requests,
        "cache_hits": sum(s.get("cache_hits", 0) for s in sessions),
        "images_per_s": requests / wall if wall else None,
        "latency_median_s": metrics.get("latency_median_s"),
        "latency_p95_s": metrics.get("latency_p95_s"),
        "generated_tokens_per_s": eval_count / eval_ns * 1e9 if eval_ns else None,
        "prompt_tokens_per_s": prompt_count / prompt_ns * 1e9 if prompt_ns else None,
        "prompt_tokens_per_request": prompt_count / requests if requests else None,
        "load_s": loads[-1] if loads else None,
    }


def _speed(metrics: dict[str, Any], manifest: dict[str, Any]) -> str:
    speed = speed_summary(manifest, metrics)
    rows = [
        ["requests sent (all sessions)", speed["requests"]],
        ["answers from the cache", speed["cache_hits"]],
        ["images/s while requesting", fixed(speed["images_per_s"], 2)],
        ["median latency (s)", fixed(speed["latency_median_s"], 3)],
        ["95th percentile latency (s)", fixed(speed["latency_p95_s"], 3)],
        ["generated tokens/s (server timings)", fixed(speed["generated_tokens_per_s"], 1)],
        ["prompt tokens/s (server timings)", fixed(speed["prompt_tokens_per_s"], 1)],
        ["prompt tokens per request", fixed(speed["prompt_tokens_per_request"], 0)],
        ["model load (s)", fixed(speed["load_s"], 2)],
    ]
    concurrency = manifest.get("request", {}).get("concurrency")
    note = (
        "\n\nLatency is per request as the client saw it, queueing included"
        + (f" ({concurrency} requests in flight)" if concurrency else "")
        + "; an answer from the cache keeps the latency of the request that made it."
    )
    return (
        "## Speed\n\n"
        + table(["measure", "value"], rows)
        + note
        + _image_size_note(manifest)
        + _hosts(manifest)
    )


def _hosts(manifest: dict[str, Any]) -> str:
    """Images and speed per server, when several shared the work."""
    served: dict[str, dict[str, float]] = {}
    for session in manifest.get("sessions", []):
        for host in session.get("hosts") or []:
            entry = served.setdefault(host["url"], {"images": 0, "errors": 0, "busy_s": 0.0})
            entry["images"] += host.get("images", 0)
            entry["errors"] += host.get("errors", 0)
            entry["busy_s"] += host.get("busy_s", 0.0)
    if len(served) < 2:
        return ""
    wall = sum(s.get("wall_s", 0.0) for s in manifest.get("sessions", []) if s.get("hosts"))
    rows = [
        [url, int(e["images"]), fixed(e["images"] / wall, 2) if wall else None, int(e["errors"])]
        for url, e in served.items()
    ]
    return "\n\nServers that shared the work:\n\n" + table(
        ["host", "images", "images/s", "failed requests"], rows
    )


QWEN_PATCH_PIXELS = 28 * 28  # Qwen2.5-VL spends about one token per 28x28 pixels


def _image_size_note(manifest: dict[str, Any]) -> str:
    """What the images sent cost, and what --max-side saved (pixels and image tokens)."""
    sessions = manifest.get("sessions", [])
    source = sum(s.get("pixels_source", 0) for s in sessions)
    sent = sum(s.get("pixels_sent", 0) for s in sessions)
    images = sum(s.get("requests", 0) for s in sessions)
    if not (source and sent and images):
        return ""
    mean_source, mean_sent = source / images, sent / images
    text = (
        f"\n\nImages sent averaged {mean_sent / 1e6:.2f} megapixels "
        f"(about {mean_sent / QWEN_PATCH_PIXELS:,.0f} image tokens each for Qwen2.5-VL, "
        "one per 28×28 pixels)"
    )
    if manifest.get("max_side") and sent < source:
        text += (
            f"; `--max-side {manifest['max_side']}` cut them from {mean_source / 1e6:.2f} "
            f"megapixels (about {mean_source / QWEN_PATCH_PIXELS:,.0f} tokens): "
            f"{1 - sent / source:.0%} fewer pixels to encode per image"
        )
    return text + "."


def _setup(manifest: dict[str, Any]) -> str:
    model = manifest.get("model", {})
    dataset = manifest.get("dataset", {})
    size = model.get("size_bytes") or 0
    max_side = manifest.get("max_side")
    rows = [
        ["model", model.get("name")],
        ["family", model.get("family")],
        ["parameters", model.get("parameter_size")],
        ["quantization", model.get("quantization")],
        ["size on disk", f"{size / 1e9:.2f} GB" if size else None],
        ["digest", (model.get("digest") or "")[:12] or None],
        ["server", f"Ollama {manifest.get('server', {}).get('version', '?')}"],
        ["options", ", ".join(f"{k}={v}" for k, v in manifest.get("options", {}).items())],
        ["images sent", f"longer side ≤ {max_side} px" if max_side else "as stored"],
        ["prompt sha256", (manifest.get("task", {}).get("prompt_sha256") or "")[:12]],
        ["dataset format", dataset.get("format")],
        ["sample", sample_text(dataset)],
        ["started", manifest.get("created_at")],
        ["last updated", manifest.get("updated_at")],
        ["emoprobe", manifest.get("emoprobe_version")],
    ]
    return "## Model and setup\n\n" + table(["", ""], rows)


def sample_text(dataset: dict[str, Any]) -> str:
    if dataset.get("per_class"):
        return f"{dataset['per_class']} per class, seed {dataset.get('seed')}"
    return f"all {dataset.get('n_items', '?')} images"
