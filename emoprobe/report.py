"""metrics + manifest → report.md: plain Markdown tables, figures to 4 decimals.

Reports are aggregates: no file names, no images; unparsed answers are quoted as
text only, shortened.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from .paper import paper_result_for
from .predictions import ERROR, UNPARSED_STATUS, Row

QUOTED_ANSWERS = 5
QUOTE_LENGTH = 80
UNPARSED_RULE = (
    "An answer that names no label (or several without a clear choice) is `unparsed`: "
    "it counts as a wrong prediction and stays in every denominator. Unreadable images "
    "(`error` rows) are left out of the scores and counted below."
)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    align = [
        "---:" if rows and all(isinstance(row[i], (int, float)) for row in rows) else "---"
        for i in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_report(metrics: dict[str, Any], manifest: dict[str, Any], rows: Sequence[Row]) -> str:
    """The whole report.md of one run."""
    model = manifest.get("model", {})
    name = model.get("name", "?")
    dataset = manifest.get("dataset", {})
    sections = [
        f"# emoprobe: {name} on {_dataset_name(dataset)}",
        _status_line(metrics, manifest),
        _overall(metrics, model),
        _per_class(metrics, model),
        _confusion(metrics),
        _answers(metrics, rows),
        _speed(metrics, manifest),
        _setup(manifest),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _dataset_name(dataset: dict[str, Any]) -> str:
    root = str(dataset.get("root", "dataset")).rstrip("/")
    return root.rsplit("/", 1)[-1] or root


def _status_line(metrics: dict[str, Any], manifest: dict[str, Any]) -> str:
    sessions = manifest.get("sessions", [])
    failed = sessions[-1].get("failed", 0) if sessions else 0
    line = (
        f"{metrics['n']} images: {metrics['n_scored']} scored "
        f"({metrics['n_ok']} answered with a label, {metrics['n_unparsed']} unparsed), "
        f"{metrics['n_error']} unreadable."
    )
    if failed:
        line += (
            f" **Incomplete:** {failed} requests failed in the last session; "
            "re-running the same command retries them."
        )
    return line


def _overall(metrics: dict[str, Any], model: dict[str, Any]) -> str:
    keys = ("f1_weighted", "accuracy", "precision_weighted", "recall_weighted")
    label = f"{model.get('name', 'this run')} (this run)"
    rows: list[list[Any]] = [[label, *(metrics.get(key) for key in keys)]]
    paper = paper_result_for(model.get("name", ""), model.get("family", ""))
    if paper:
        rows.append(
            [f"{paper.model} (paper)", paper.f1, paper.accuracy, paper.precision, paper.recall]
        )
    text = "## Overall (weighted averages, the paper's Table 1 layout)\n\n"
    text += table(["model", "F1", "Accuracy", "Precision", "Recall"], rows)
    text += (
        f"\n\nMacro averages: F1 {_cell(metrics.get('f1_macro'))}, precision "
        f"{_cell(metrics.get('precision_macro'))}, recall {_cell(metrics.get('recall_macro'))}."
    )
    if not paper:
        text += " The paper tested no model of this family, so no paper row is shown."
    return text


def _per_class(metrics: dict[str, Any], model: dict[str, Any]) -> str:
    paper = paper_result_for(model.get("name", ""), model.get("family", ""))
    header = ["class", "precision", "recall", "F1", "support"]
    if paper:
        header.append("paper F1")
    rows = []
    for label, scores in metrics.get("per_class", {}).items():
        row = [label, scores["precision"], scores["recall"], scores["f1"], scores["support"]]
        if paper:
            row.append(paper.per_class_f1.get(label))
        rows.append(row)
    if not rows:
        return "## Per class\n\nNo image was scored."
    text = "## Per class\n\n" + table(header, rows)
    if paper:
        text += (
            "\n\nThe paper gives per-class F1 to two decimals, in the text only, listed as "
            "confused, distracted, happy, neutral, tired; that order is the paper's."
        )
    return text


def _confusion(metrics: dict[str, Any]) -> str:
    confusion = metrics["confusion_matrix"]
    labels, columns, matrix = confusion["labels"], confusion["columns"], confusion["matrix"]
    if not metrics.get("n_scored"):
        return ""
    counts = [[label, *row] for label, row in zip(labels, matrix, strict=True)]
    shares = []
    for label, row in zip(labels, matrix, strict=True):
        total = sum(row)
        shares.append([label, *((value / total) if total else None for value in row)])
    header = ["true \\ predicted", *columns]
    return (
        "## Confusion matrix\n\nRows are the true labels, columns the predictions.\n\n"
        f"Counts:\n\n{table(header, counts)}\n\nShare of each row:\n\n{table(header, shares)}"
    )


def _answers(metrics: dict[str, Any], rows: Sequence[Row]) -> str:
    scored = metrics["n_scored"]
    rate = metrics["n_unparsed"] / scored if scored else None
    lines = [
        "## Answers",
        "",
        f"Unparsed: {metrics['n_unparsed']} of {scored} scored answers ({_cell(rate)}). "
        + UNPARSED_RULE,
    ]
    quotes = [row.raw for row in rows if row.status == UNPARSED_STATUS][:QUOTED_ANSWERS]
    if quotes:
        lines += ["", "Some unparsed answers (shortened):", ""]
        lines += [f"- `{_shorten(quote)}`" for quote in quotes]
    reasons = Counter(row.error for row in rows if row.status == ERROR)
    if reasons:
        lines += ["", f"Unreadable images: {metrics['n_error']}.", ""]
        lines += [table(["reason", "images"], reasons.most_common())]
    return "\n".join(lines)


def _shorten(text: str) -> str:
    flat = " ".join(text.split()).replace("`", "'")
    return flat if len(flat) <= QUOTE_LENGTH else flat[: QUOTE_LENGTH - 1] + "…"


def _speed(metrics: dict[str, Any], manifest: dict[str, Any]) -> str:
    sessions = manifest.get("sessions", [])
    requests = sum(s.get("requests", 0) for s in sessions)
    wall = sum(s.get("wall_s", 0.0) for s in sessions if s.get("requests"))
    eval_count = sum(s.get("eval_count", 0) for s in sessions)
    eval_ns = sum(s.get("eval_duration_ns", 0) for s in sessions)
    prompt_count = sum(s.get("prompt_eval_count", 0) for s in sessions)
    prompt_ns = sum(s.get("prompt_eval_duration_ns", 0) for s in sessions)
    hits = sum(s.get("cache_hits", 0) for s in sessions)
    loads = [s["load_s"] for s in sessions if s.get("load_s") is not None]
    rows = [
        ["requests sent (all sessions)", requests],
        ["answers from the cache", hits],
        ["images/s while requesting", requests / wall if wall else None],
        ["median latency (s)", metrics.get("latency_median_s")],
        ["95th percentile latency (s)", metrics.get("latency_p95_s")],
        ["generated tokens/s", eval_count / eval_ns * 1e9 if eval_ns else None],
        ["prompt tokens/s", prompt_count / prompt_ns * 1e9 if prompt_ns else None],
        ["prompt tokens per request", prompt_count / requests if requests else None],
        ["model load (s)", loads[-1] if loads else None],
    ]
    return "## Speed\n\n" + table(["measure", "value"], rows)


def _setup(manifest: dict[str, Any]) -> str:
    model = manifest.get("model", {})
    dataset = manifest.get("dataset", {})
    size = model.get("size_bytes") or 0
    rows = [
        ["model", model.get("name")],
        ["family", model.get("family")],
        ["parameters", model.get("parameter_size")],
        ["quantization", model.get("quantization")],
        ["size on disk", f"{size / 1e9:.2f} GB" if size else None],
        ["digest", (model.get("digest") or "")[:12] or None],
        ["server", f"Ollama {manifest.get('server', {}).get('version', '?')}"],
        ["options", ", ".join(f"{k}={v}" for k, v in manifest.get("options", {}).items())],
        ["prompt sha256", (manifest.get("task", {}).get("prompt_sha256") or "")[:12]],
        ["dataset format", dataset.get("format")],
        ["sample", _sample_text(dataset)],
        ["emoprobe", manifest.get("emoprobe_version")],
    ]
    return "## Model and setup\n\n" + table(["", ""], rows)


def _sample_text(dataset: dict[str, Any]) -> str:
    if dataset.get("per_class"):
        return f"{dataset['per_class']} per class, seed {dataset.get('seed')}"
    return f"all {dataset.get('n_items', '?')} images"
