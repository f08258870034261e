"""`emoprobe view`: one self-contained HTML page of every image's answers.

Pure: run records and image sources in, one HTML string out, its CSS and JavaScript
inline and its data one compact JSON blob in columns (no server, no CDN, no network).
The page draws only the rows in sight (virtual scrolling) and filters in JavaScript over
typed columns, so 31,115 images × 6 runs open and filter without stalling.

Answers are untrusted text: the page puts them into the DOM with `textContent` only,
and the JSON blob escapes `<`, `>` and `&`, so no answer can close the script or run.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, TypeVar

from emoprobe.errors import ConfigError
from emoprobe.results.load import RunRecord
from emoprobe.results.metrics import compute_metrics
from emoprobe.results.predictions import SCORED_STATUSES, UNANSWERED_STATUSES, Row, to_frame
from emoprobe.results.stats import McNemar, agreement, cohen_kappa, mcnemar
from emoprobe.task.definition import UNPARSED

T = TypeVar("T")
SCORED = SCORED_STATUSES
NO_ANSWER = "error"  # the page's column for images without an answer
LINKED_NOTE = (
    "Images are linked by their paths: this page holds no image data, and shows a face only "
    "where its file is on this computer."
)
EMBEDDED_NOTE = (
    "This page embeds small thumbnails of {n} images (re-encoded, no EXIF): it holds faces. "
    "Share it only where the people in them agreed."
)


@dataclass(frozen=True)
class SharedImages:
    """The images every run has, matched by sha256 and path, in the first run's order."""

    keys: list[tuple[str, str]]
    rows: list[list[Row]]  # rows[run][image]
    left_out: list[int]  # per run: its images that some other run lacks


def share_images(runs: Sequence[RunRecord]) -> SharedImages:
    """Pair the runs' rows by image; one-line errors when they cannot be shown together."""
    if not runs:
        raise ConfigError("give at least one run folder to view")
    labels = runs[0].labels
    for run in runs[1:]:
        if sorted(run.labels) != sorted(labels):  # the order may differ (a prompt variant)
            raise ConfigError(
                f"{run.path} has the labels {', '.join(run.labels)}, {runs[0].path} has "
                f"{', '.join(labels)}: runs of different tasks cannot share one view"
            )
    by_key = [{(row.sha256, row.path): row for row in run.rows} for run in runs]
    keys = [key for key in by_key[0] if all(key in other for other in by_key[1:])]
    if not keys:
        raise ConfigError(
            "the runs share no image (matched by sha256 and path): were they made on the "
            "same dataset?"
        )
    conflicts = sum(len({rows[key].label for rows in by_key}) > 1 for key in keys)
    if conflicts:
        raise ConfigError(
            f"the runs disagree on the true label of {conflicts} shared images: their "
            "datasets label them differently"
        )
    return SharedImages(
        keys=keys,
        rows=[[rows[key] for key in keys] for rows in by_key],
        left_out=[len(rows) - len(keys) for rows in by_key],
    )


def run_names(runs: Sequence[RunRecord]) -> list[str]:
    """Each run's folder name, with its parent where two would read the same."""
    names = [run.path.name or str(run.path) for run in runs]
    if len(set(names)) == len(names):
        return names
    return [f"{run.path.parent.name}/{run.path.name}" for run in runs]


def view_data(
    runs: Sequence[RunRecord],
    shared: SharedImages,
    images: Sequence[str],
    embedded: bool,
    names: Sequence[str],
) -> dict[str, Any]:
    """The page's data: columns of codes plus one table of distinct answer texts."""
    labels = runs[0].labels
    columns = [*labels, UNPARSED, NO_ANSWER]
    code = {name: index for index, name in enumerate(columns)}
    strings: dict[str, int] = {}  # each distinct answer text, and its code
    columns_by_run = []
    for run, rows, name in zip(runs, shared.rows, names, strict=True):
        scores = [_scores(row, labels) for row in rows]
        has_scores = any(s is not None for s in scores)
        columns_by_run.append(
            {
                "name": name,
                "model": run.manifest.model.name or "?",
                "answer_mode": run.manifest.answer_mode,
                "pred": [_prediction_code(row, code) for row in rows],
                "answer": [strings.setdefault(_shown_answer(row), len(strings)) for row in rows],
                "latency": [_milliseconds(row.latency_s) for row in rows],
                "conf": [max(s) if s else -1 for s in scores] if has_scores else None,
                "scores": [s or [] for s in scores] if has_scores else None,
            }
        )
    first = shared.rows[0]
    return {
        "mode": "embedded" if embedded else "linked",
        "labels": labels,
        "columns": columns,
        "paths": [row.path for row in first],
        "images": list(images),
        "truth": [code.get(row.label, -1) for row in first],
        "runs": columns_by_run,
        "strings": list(strings),
    }


def _shown_answer(row: Row) -> str:
    return row.error if row.status in UNANSWERED_STATUSES else row.raw


def _prediction_code(row: Row, code: dict[str, int]) -> int:
    if row.status in UNANSWERED_STATUSES:
        return code[NO_ANSWER]
    return code.get(row.prediction or UNPARSED, code[UNPARSED])


def _milliseconds(latency: float | None) -> int:
    return -1 if latency is None or not math.isfinite(latency) else round(latency * 1000)


def _scores(row: Row, labels: Sequence[str]) -> list[int] | None:
    """Per-label scores in thousandths, or None when the row has none."""
    if not row.scores or any(label not in row.scores for label in labels):
        return None
    values = [float(row.scores[label]) for label in labels]
    if not all(math.isfinite(v) for v in values):
        return None
    return [round(1000 * v) for v in values]


# -- the figures at the top ------------------------------------------------------------
@dataclass(frozen=True)
class PairedFigures:
    first: str
    second: str
    test: McNemar
    kappa: float | None
    agreement: float | None


def paired_figures(
    runs: Sequence[RunRecord], shared: SharedImages, names: Sequence[str]
) -> tuple[int, list[PairedFigures]]:
    """How many images every run scored; McNemar, Cohen's κ and agreement of each pair on them."""
    both = [
        i for i in range(len(shared.keys)) if all(rows[i].status in SCORED for rows in shared.rows)
    ]
    codes: dict[str, int] = {}  # integer answers: the same κ as strings, many times faster
    answers = [
        [codes.setdefault(rows[i].prediction or UNPARSED, len(codes)) for i in both]
        for rows in shared.rows
    ]
    correct = [[rows[i].prediction == rows[i].label for i in both] for rows in shared.rows]
    pairs = [
        PairedFigures(
            names[a],
            names[b],
            mcnemar(correct[a], correct[b]),
            cohen_kappa(answers[a], answers[b]),
            agreement(answers[a], answers[b]),
        )
        for a, b in combinations(range(len(runs)), 2)
    ]
    return len(both), pairs


# -- the page ----------------------------------------------------------------------------
def view_html(
    runs: Sequence[RunRecord],
    shared: SharedImages,
    images: Sequence[str],
    *,
    embedded: bool,
    title: str = "emoprobe view",
    names: Sequence[str] | None = None,
) -> str:
    """The whole page. `images` holds one source per shared image ("" for none);
    `names` the runs' names as shown (their folders' where not given)."""
    if len(images) != len(shared.keys):
        raise ValueError("give one image source per shared image")
    names = names or run_names(runs)
    data = view_data(runs, shared, images, embedded, names)
    n_both, pairs = paired_figures(runs, shared, names)
    note = EMBEDDED_NOTE.format(n=sum(bool(s) for s in images)) if embedded else LINKED_NOTE
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p id="mode" data-mode="{data["mode"]}">{_e(note)}</p>',
        _runs_table(runs, shared, names),
        _pairs_table(pairs, n_both) if pairs else "",
    ]
    blob = (
        json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    header = "\n".join(part for part in body if part)
    return _PAGE.format(title=_e(title), style=_STYLE, header=header, data=blob, script=_SCRIPT)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _figure(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _html_table(
    table_id: str, columns: Sequence[tuple[str, Callable[[T], object]]], items: Sequence[T]
) -> str:
    """An HTML table of `items`, one row each: a column is its header and its value."""
    head = "".join(f"<th>{name}</th>" for name, _ in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(read(item))}</td>" for _, read in columns) + "</tr>"
        for item in items
    )
    return f'<table id="{table_id}"><tr>{head}</tr>{rows}</table>'


def _runs_table(runs: Sequence[RunRecord], shared: SharedImages, names: Sequence[str]) -> str:
    """Per run, on the shared images: scored count, accuracy, weighted F1, errors."""
    metrics = [
        compute_metrics(to_frame(rows, run.labels), run.labels)
        for run, rows in zip(runs, shared.rows, strict=True)
    ]
    left_out = [f"{_e(name)}: {n}" for name, n in zip(names, shared.left_out, strict=True) if n]
    note = ""
    if left_out:
        note = (
            f'<p id="left-out">Showing the {len(shared.keys)} images every run has; left out '
            f"because another run lacks them — {', '.join(left_out)}.</p>"
        )
    columns: list[tuple[str, Callable[[int], object]]] = [
        ("run", lambda r: names[r]),
        ("model", lambda r: runs[r].manifest.model.name or "?"),
        ("quant", lambda r: runs[r].manifest.model.quantization or "–"),
        ("answer", lambda r: runs[r].manifest.answer_mode),
        ("scored", lambda r: metrics[r].n_scored),
        ("accuracy", lambda r: _figure(metrics[r].accuracy)),
        ("weighted F1", lambda r: _figure(metrics[r].f1_weighted)),
        ("unparsed", lambda r: metrics[r].n_unparsed),
        ("errors", lambda r: metrics[r].n_error),
    ]
    return _html_table("runs", columns, range(len(runs))) + note


def _pairs_table(pairs: list[PairedFigures], n_both: int) -> str:
    columns: list[tuple[str, Callable[[PairedFigures], object]]] = [
        ("run A", lambda p: p.first),
        ("run B", lambda p: p.second),
        ("only A right", lambda p: p.test.b),
        ("only B right", lambda p: p.test.c),
        ("McNemar p", lambda p: _figure(p.test.p_value, 4)),
        ("test", lambda p: p.test.method),
        ("Cohen's κ", lambda p: _figure(p.kappa)),
        ("same answer", lambda p: _figure(p.agreement)),
    ]
    return f"<h2>Paired, on the {n_both} images every run scored</h2>" + _html_table(
        "pairs", columns, pairs
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title><style>{style}</style></head>
<body>
<header>{header}</header>
<section id="controls">
<div id="matrix-box"><h2>Confusion matrix <small>(click a cell to filter)</small></h2>
<table id="matrix"></table></div>
<div id="filters">
<label id="run-box">run <select id="run"></select></label>
<label>status <select id="status">
<option value="">any</option><option value="right">right</option>
<option value="wrong">wrong</option><option value="ok">ok</option>
<option value="unparsed">unparsed</option><option value="error">error</option>
</select></label>
<label>class <select id="klass"><option value="-1">any</option></select></label>
<label>answer contains <input id="search" type="search" placeholder="text"></label>
<label id="disagree-box"><input id="disagree" type="checkbox"> runs disagree</label>
<label>sort <select id="sort">
<option value="order">sample order</option>
<option value="conf-desc">confidence, high first</option>
<option value="conf-asc">confidence, low first</option>
<option value="latency-desc">latency, slow first</option>
</select></label>
<button id="clear" type="button">clear filters</button>
<span id="count"></span>
</div></section>
<div id="head-row"></div>
<div id="viewport"><div id="spacer"><div id="rows"></div></div></div>
<pre id="detail">Click a row to see its whole answers.</pre>
<script id="data" type="application/json">{data}</script>
<script>{script}</script>
</body></html>
"""

_STYLE = """
body{font:13px/1.35 system-ui,sans-serif;margin:12px;color:#222}
h1{font-size:18px;margin:0 0 4px}h2{font-size:14px;margin:10px 0 4px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}
#mode{color:#555;margin:2px 0 8px}#left-out{color:#a40}
#controls{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap;margin:8px 0}
#filters{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;max-width:760px;
padding-top:28px}
#matrix td.cell{cursor:pointer;text-align:right;min-width:34px}
#matrix td.diag{background:#e6f4e6}#matrix td.sel{outline:2px solid #06c;background:#cde}
#matrix th.corner{color:#777;font-weight:normal}
#count{font-weight:bold}
#head-row,.row{display:grid;grid-template-columns:var(--cols);gap:6px;align-items:center}
#head-row{font-weight:bold;border-bottom:1px solid #999;padding:2px 0}
#viewport{height:60vh;overflow-y:auto;border:1px solid #ccc;position:relative}
#spacer{position:relative}
.row{position:absolute;left:0;right:0;height:60px;border-bottom:1px solid #eee;cursor:pointer}
.row:hover{background:#f6f9ff}
.thumb{width:56px;height:56px;object-fit:cover;background:#eee;display:block}
.cellbox{overflow:hidden;min-width:0}
.line{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.answer{color:#444;font-family:ui-monospace,monospace;font-size:12px}
.right{color:#060;font-weight:bold}.wrong{color:#b00;font-weight:bold}
.unparsed,.error{color:#850;font-weight:bold}.meta{color:#777;margin-left:6px}
#detail{white-space:pre-wrap;border:1px solid #ccc;padding:6px;margin-top:8px;max-height:30vh;
overflow:auto}
"""

_SCRIPT = r"""
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const N = D.paths.length, R = D.runs.length, K = D.labels.length;
const UNP = K, ERR = K + 1, ROW = 60;
const lower = D.strings.map(s => s.toLowerCase());
let pathLower = null;
const state = {run: 0, cell: null, status: "", klass: -1, text: "", disagree: false, sort: "order"};
let view = new Int32Array(0);
const $ = id => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function statusOf(p, t) {
  if (p === ERR) return "error";
  if (p === UNP) return "unparsed";
  return p === t ? "right" : "wrong";
}
function statusMatch(want, p, t) {
  const s = statusOf(p, t);
  if (want === "ok") return s === "right" || s === "wrong";
  return s === want;
}
function disagrees(i) {
  const p = D.runs[0].pred[i];
  for (let r = 1; r < R; r++) if (D.runs[r].pred[i] !== p) return true;
  return false;
}
function apply() {
  const run = D.runs[state.run], pred = run.pred, truth = D.truth;
  let hits = null, q = "";
  if (state.text) {
    q = state.text.toLowerCase();
    hits = new Uint8Array(lower.length);
    for (let k = 0; k < lower.length; k++) hits[k] = lower[k].includes(q) ? 1 : 0;
    if (!pathLower) pathLower = D.paths.map(p => p.toLowerCase());
  }
  const out = new Int32Array(N);
  let n = 0;
  for (let i = 0; i < N; i++) {
    const p = pred[i], t = truth[i];
    if (state.cell && (t !== state.cell[0] || p !== state.cell[1])) continue;
    if (state.klass >= 0 && t !== state.klass) continue;
    if (state.status && !statusMatch(state.status, p, t)) continue;
    if (state.disagree && !disagrees(i)) continue;
    if (hits) {
      let hit = pathLower[i].includes(q);
      for (let r = 0; r < R && !hit; r++) hit = hits[D.runs[r].answer[i]] === 1;
      if (!hit) continue;
    }
    out[n++] = i;
  }
  view = out.slice(0, n);
  const key = sortKey();
  if (key) {
    const keys = Array.from(view, key);
    const idx = Array.from(view.keys()).sort((a, b) => keys[a] - keys[b] || view[a] - view[b]);
    view = Int32Array.from(idx, j => view[j]);
  }
  $("count").textContent = n + " of " + N + " images";
  $("spacer").style.height = (n * ROW) + "px";
  $("viewport").scrollTop = 0;
  drawRows();
  drawMatrix();
}
function sortKey() {
  const run = D.runs[state.run];
  if (state.sort === "latency-desc") return i => -run.latency[i];
  if (!run.conf || state.sort === "order") return null;
  const sign = state.sort === "conf-desc" ? -1 : 1;
  return i => run.conf[i] < 0 ? Infinity : sign * run.conf[i];
}
function drawMatrix() {
  const run = D.runs[state.run], cols = D.columns.length;
  const counts = new Int32Array(K * cols);
  for (let i = 0; i < N; i++) if (D.truth[i] >= 0) counts[D.truth[i] * cols + run.pred[i]]++;
  const table = $("matrix");
  const head = el("tr");
  head.append(el("th", "corner", "true ↓ / answer →"));
  for (const c of D.columns) head.append(el("th", "", c));
  const rows = [head];
  for (let t = 0; t < K; t++) {
    const tr = el("tr");
    tr.append(el("th", "", D.labels[t]));
    for (let p = 0; p < cols; p++) {
      const td = el("td", "cell" + (t === p ? " diag" : ""), String(counts[t * cols + p]));
      td.dataset.t = t; td.dataset.p = p;
      if (state.cell && state.cell[0] === t && state.cell[1] === p) td.classList.add("sel");
      tr.append(td);
    }
    rows.push(tr);
  }
  table.replaceChildren(...rows);
}
function drawRows() {
  const vp = $("viewport");
  const first = Math.max(0, Math.floor(vp.scrollTop / ROW) - 4);
  const last = Math.min(view.length, first + Math.ceil(vp.clientHeight / ROW) + 8);
  const nodes = [];
  for (let v = first; v < last; v++) nodes.push(rowNode(view[v], v));
  $("rows").replaceChildren(...nodes);
}
function fmtScores(run, i) {
  if (!run.scores || !run.scores[i].length) return "";
  return run.scores[i].map((s, k) => D.labels[k] + " " + (s / 1000).toFixed(3)).join(" · ");
}
function rowNode(i, v) {
  const row = el("div", "row");
  row.style.top = (v * ROW) + "px";
  row.dataset.index = i;
  const img = el("img", "thumb");
  img.alt = "";
  img.loading = "lazy";
  if (D.images[i]) {
    img.src = D.images[i];
    img.onerror = () => { img.style.visibility = "hidden"; };
  }
  row.append(img);
  const info = el("div", "cellbox");
  info.append(el("div", "line path", D.paths[i]));
  info.append(el("div", "line truth", "true: " + (D.labels[D.truth[i]] || "?")));
  row.append(info);
  for (let r = 0; r < R; r++) {
    const run = D.runs[r], p = run.pred[i], s = statusOf(p, D.truth[i]);
    const box = el("div", "cellbox run-cell");
    const top = el("div", "line");
    top.append(el("span", "pred " + s, p === ERR ? "error" : D.columns[p]));
    const meta = [];
    if (run.conf && run.conf[i] >= 0) meta.push("conf " + (run.conf[i] / 1000).toFixed(3));
    if (run.latency[i] >= 0) meta.push((run.latency[i] / 1000).toFixed(2) + " s");
    top.append(el("span", "meta", meta.join("  ")));
    box.append(top);
    const answer = el("div", "line answer", D.strings[run.answer[i]]);
    answer.title = D.strings[run.answer[i]];
    box.append(answer);
    row.append(box);
  }
  row.addEventListener("click", () => showDetail(i));
  return row;
}
function showDetail(i) {
  const lines = [D.paths[i] + "   true: " + (D.labels[D.truth[i]] || "?")];
  for (const run of D.runs) {
    lines.push("", run.name + " (" + run.model + ", " + run.answer_mode + "): " +
      statusOf(run.pred[i], D.truth[i]) + " — " + D.columns[run.pred[i]]);
    const sc = fmtScores(run, i);
    if (sc) lines.push("scores: " + sc);
    lines.push(D.strings[run.answer[i]]);
  }
  $("detail").textContent = lines.join("\n");
}
function setup() {
  const cols = ["64px", "minmax(120px,1fr)"];
  const head = [el("div", "", ""), el("div", "", "image")];
  for (const run of D.runs) {
    cols.push("minmax(140px,2fr)");
    head.push(el("div", "line", run.name));
  }
  document.documentElement.style.setProperty("--cols", cols.join(" "));
  $("head-row").replaceChildren(...head);
  D.runs.forEach((run, r) => {
    const o = el("option", "", run.name + " — " + run.model);
    o.value = r;
    $("run").append(o);
  });
  D.labels.forEach((label, t) => {
    const o = el("option", "", label);
    o.value = t;
    $("klass").append(o);
  });
  if (R < 2) { $("run-box").hidden = true; $("disagree-box").hidden = true; }
  $("run").addEventListener("change", e => {
    state.run = +e.target.value;
    state.cell = null;
    apply();
  });
  $("status").addEventListener("change", e => { state.status = e.target.value; apply(); });
  $("klass").addEventListener("change", e => { state.klass = +e.target.value; apply(); });
  $("disagree").addEventListener("change", e => { state.disagree = e.target.checked; apply(); });
  $("sort").addEventListener("change", e => { state.sort = e.target.value; apply(); });
  let timer = 0;
  $("search").addEventListener("input", e => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.text = e.target.value.trim(); apply(); }, 120);
  });
  $("matrix").addEventListener("click", e => {
    const td = e.target.closest("td.cell");
    if (!td) return;
    const t = +td.dataset.t, p = +td.dataset.p;
    state.cell = state.cell && state.cell[0] === t && state.cell[1] === p ? null : [t, p];
    apply();
  });
  $("clear").addEventListener("click", () => {
    Object.assign(state, {cell: null, status: "", klass: -1, text: "", disagree: false});
    $("status").value = "";
    $("klass").value = "-1";
    $("search").value = "";
    $("disagree").checked = false;
    apply();
  });
  let pending = false;
  $("viewport").addEventListener("scroll", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; drawRows(); });
  });
  apply();
  document.body.dataset.ready = "1";
}
setup();
"""
