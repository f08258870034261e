"""Issue #16: data that survives a hostile server, dataset and cache, and errors that guide.

Each test runs the real CLI against the Ollama double (odd answers through its `answer=`
hook, odd model details through its `ModelSpec`s) or feeds the library a hostile file.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from factories import make_image_folder
from ollama_double import ModelSpec, OllamaDouble, answer_by_image

import emoprobe
from emoprobe.errors import ConfigError
from emoprobe.pipeline.cache import RESPONSES, ResponseCache
from emoprobe.results.predictions import HEADER, Row, keep_only, read_rows, recover


def one_line_error(result: Result, *needles: str, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "internal error" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


def csv_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "predictions.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def faces(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "faces"
    return root, make_image_folder(root, per_label=2)


def answering(double: OllamaDouble, truth: dict[str, str], special: dict[int, str]) -> None:
    """The double answers each image's label, and `special[n]` for the n-th image."""
    answers = {sha: label for sha, label in truth.items()}
    for number, sha in enumerate(sorted(truth)):
        if number in special:
            answers[sha] = special[number]
    double.answer = answer_by_image(answers)


# -- 5: an answer longer than csv's 131,072-character field limit -------------------------
def test_an_answer_longer_than_the_csv_field_limit_keeps_every_row(
    cli, ollama_double, faces, tmp_path
):
    """Answers are capped now, but an older emoprobe's file (or a cap raised) holds one:
    recover() must neither cut the file there nor report fewer images."""
    root, truth = faces
    ollama_double.answer = answer_by_image(truth)
    out = tmp_path / "out"
    assert cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet").exit_code == 0
    rows = read_rows(out / "predictions.csv")
    huge = "happy " + "very " * 40_000  # 200,006 characters
    rows[0] = dataclasses.replace(rows[0], raw=huge)
    keep_only(out / "predictions.csv", rows)
    again = cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet")
    assert again.exit_code == 0, again.output
    kept = read_rows(out / "predictions.csv")
    assert kept == rows
    shown = cli("report", out)
    assert shown.exit_code == 0, shown.output
    assert json.loads((out / "metrics.json").read_text())["n"] == len(truth)


# -- 6: the model name is in the cache key ------------------------------------------------
def test_a_second_model_with_an_empty_digest_never_gets_the_first_models_answers(
    cli, ollama_double, faces, tmp_path
):
    """Named by their full registry path, /api/tags lists neither model: both digests
    are "" and only the name tells them apart."""
    root, truth = faces
    ollama_double.answer = answer_by_image(dict.fromkeys(truth, "happy"))
    for number, model in enumerate(("qwen2.5vl:7b", "llama3.2-vision:11b")):
        out = tmp_path / f"out{number}"
        name = f"registry.ollama.ai/library/{model}"
        result = cli("run", root, "--host", ollama_double.url, "--model", name, "--out", out)
        assert result.exit_code == 0, result.output
        assert not any(row.cached for row in read_rows(out / "predictions.csv")), name
    assert len(ollama_double.chat_requests) == 2 * len(truth)


# -- 7: a lone surrogate in an answer ------------------------------------------------------
def test_a_lone_surrogate_in_an_answer_neither_aborts_the_run_nor_the_rerun(
    cli, ollama_double, faces, tmp_path
):
    root, truth = faces
    answering(ollama_double, truth, {0: "happy \udc80", 1: "\ud83d tired"})
    for out in (tmp_path / "first", tmp_path / "from-cache"):
        result = cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet")
        assert result.exit_code == 0, result.output
        raws = {row.raw for row in read_rows(out / "predictions.csv")}
        assert {"happy \ufffd", "\ufffd tired"} <= raws
    assert len(ollama_double.chat_requests) == len(truth)  # the re-run read the cache


# -- 8: predictions.csv that is not emoprobe's, or broken ----------------------------------
def _users_own(path: Path) -> None:
    path.write_text("name,grade\nalice,A\n")


def _extra_header_column(path: Path) -> None:
    path.write_text(HEADER.rstrip("\n") + ",notes\n")


def _malformed_row(path: Path) -> None:
    good = Row("happy/000.png", "a" * 64, "happy", "happy", "happy", "ok", latency_s=0.1)
    lines = [HEADER, *(csv_line(good, n) for n in range(3))]
    lines.insert(3, '"broken,"row"\n')
    path.write_text("".join(lines) + csv_line(good, 9))


def csv_line(row: Row, number: int) -> str:
    import io

    buffer = io.StringIO()
    cells = row.cells()
    cells[0] = f"happy/{number:03d}.png"
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (_users_own, ("is not an emoprobe predictions.csv", "line 1")),
        (_extra_header_column, ("is not an emoprobe predictions.csv", "notes")),
        (_malformed_row, ("predictions.csv, line 4", "not CSV")),
    ],
    ids=["users-own-file", "extra-header-column", "malformed-row-4"],
)
def test_a_predictions_csv_that_is_not_ours_is_never_replaced_or_cut(
    cli, ollama_double, faces, tmp_path, make, needles
):
    root, _ = faces
    out = tmp_path / "out"
    out.mkdir()
    make(out / "predictions.csv")
    before = (out / "predictions.csv").read_bytes()
    result = cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet")
    one_line_error(result, *needles)
    assert (out / "predictions.csv").read_bytes() == before
    assert ollama_double.chat_requests == []
    with pytest.raises(ConfigError, match=r"predictions\.csv"):
        recover(out / "predictions.csv")
    assert (out / "predictions.csv").read_bytes() == before


def test_a_symlinked_predictions_csv_is_refused_and_its_target_untouched(
    cli, ollama_double, faces, tmp_path
):
    root, _ = faces
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "precious.csv"
    target.write_text(HEADER)
    (out / "predictions.csv").symlink_to(target)
    result = cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet")
    one_line_error(result, "is a symlink")
    assert target.read_text() == HEADER
    assert (out / "predictions.csv").is_symlink()


def test_a_row_written_after_the_malformed_one_is_not_dropped_by_report(cli, tmp_path):
    path = tmp_path / "predictions.csv"
    _malformed_row(path)
    with pytest.raises(ConfigError, match=r"line 4"):
        read_rows(path)


# -- 10: formula injection ---------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "'quoted'", "\tTab", "happy"],
)
def test_an_answer_that_is_a_formula_is_inert_in_the_file_and_read_back_exactly(answer, tmp_path):
    row = Row("a.png", "a" * 64, "happy", "unparsed", answer, "unparsed", error="=err")
    path = tmp_path / "predictions.csv"
    path.write_text(HEADER + csv_line(row, 0))
    with open(path, encoding="utf-8", newline="") as handle:
        cells = next(iter(csv.DictReader(handle)))
    assert not cells["raw"].startswith(("=", "+", "-", "@", "\t"))
    assert not cells["error"].startswith("=")
    read = read_rows(path)[0]
    assert (read.raw, read.error) == (answer, "=err")


# -- 13: errors that guide -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (("--concurrency", "100000"), ("--concurrency must be at most 256", "got 100000")),
        (("--concurrency", "0"), ("--concurrency must be at least 1",)),
        (("--timeout", "inf"), ("--timeout must be a finite number of seconds (got inf)",)),
        (("--timeout", "nan"), ("--timeout must be a finite number of seconds (got nan)",)),
        (("--timeout", "1e9"), ("--timeout must be at most 86400 seconds",)),
        (("--timeout", "0"), ("--timeout must be more than 0",)),
        (("--backoff", "-1"), ("--backoff must be 0 or more seconds",)),
        (("--backoff", "nan"), ("--backoff must be a finite number of seconds (got nan)",)),
        (("--retries", "-1"), ("--retries must be 0 or more",)),
        (("--retries", "1000000"), ("--retries must be at most 100",)),
        (("--model", ""), ("--model '' is no model name",)),
        (("--model", "qwen 2.5"), ("is no model name",)),
    ],
)
def test_bad_request_settings_are_one_line_errors_before_any_request(
    cli, ollama_double, faces, tmp_path, flags, needles
):
    root, _ = faces
    out = tmp_path / "out"
    result = cli("run", root, "--host", ollama_double.url, "--out", out, *flags)
    one_line_error(result, *needles)
    assert ollama_double.chat_requests == []


def test_classify_checks_the_same_settings(cli, ollama_double, faces):
    root, _ = faces
    image = next(root.rglob("*.png"))
    result = cli("classify", image, "--host", ollama_double.url, "--timeout", "inf")
    one_line_error(result, "--timeout must be a finite number")


def _overwrite_answers(cache_dir: Path, value: object) -> int:
    """Every cached answer replaced by `value`; model records kept. How many."""
    with ResponseCache(cache_dir) as cache:
        keys = [key for key, _ in cache.answers() if not key.startswith("model:")]
        for key in keys:
            cache.set(key, value)  # type: ignore[arg-type]
    return len(keys)


def _bad_pickles(cache_dir: Path) -> int:
    database = sqlite3.connect(cache_dir / RESPONSES / "cache.db")
    with database:
        changed = database.execute(
            "UPDATE Cache SET value = ?, mode = 4 WHERE key NOT LIKE 'model:%'",
            (b"\x80\x04not a pickle",),
        ).rowcount
    database.close()
    return changed


@pytest.mark.parametrize(
    "poison",
    [
        "bad-pickle",
        ["a", "list"],
        "a string",
        {},
        {"raw": "happy", "latency_s": "abc"},
        {"raw": 12345},
        {"raw": "happy", "timings": "fast"},
        {"raw": "happy", "scores": {"happy": "high"}},
    ],
    ids=str,
)
def test_a_poisoned_cache_value_is_a_counted_miss_never_an_error_or_a_score(
    cli, ollama_double, faces, tmp_path, isolated_env, poison
):
    root, truth = faces
    ollama_double.answer = answer_by_image(truth)
    first = cli("run", root, "--host", ollama_double.url, "--out", tmp_path / "a", "--quiet")
    assert first.exit_code == 0, first.output
    if poison == "bad-pickle":
        poisoned = _bad_pickles(isolated_env)
    else:
        poisoned = _overwrite_answers(isolated_env, poison)
    assert poisoned == len(truth)
    out = tmp_path / "b"
    again = cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet")
    assert again.exit_code == 0, again.output
    assert f"{len(truth)} cached value(s)" in again.stderr, again.stderr
    assert len(ollama_double.chat_requests) == 2 * len(truth)
    rows = read_rows(out / "predictions.csv")
    assert [row.status for row in rows] == ["ok"] * len(truth)
    assert not any(row.cached for row in rows)


def test_an_old_cached_answer_with_a_lone_surrogate_reads_as_replacement_text(tmp_path):
    from emoprobe.pipeline.cache import answer_from_value

    assert answer_from_value({"raw": "happy \udc80"}).raw == "happy \ufffd"


def test_a_full_cache_disk_says_free_space_not_delete_the_cache(tmp_path):
    import errno

    from emoprobe.errors import CacheError
    from emoprobe.pipeline.cache import _translated

    for error in (
        OSError(errno.ENOSPC, "No space left on device"),
        sqlite3.OperationalError("database or disk is full"),
    ):
        with pytest.raises(CacheError) as caught, _translated(tmp_path):
            raise error
        assert "disk is full" in caught.value.message
        assert "cached answers are kept" in caught.value.message
        assert "delete" not in caught.value.message


@pytest.mark.parametrize(
    "change",
    [
        {"fingerprint": "x"},
        {"model": {"digest": 5}},
        {"sessions": {"a": 1}},
        {"dataset": {"n_items": "many"}},
        {"task": {"labels": "happy"}},
    ],
    ids=str,
)
def test_a_manifest_of_wrong_types_is_a_one_line_error(cli, ollama_double, faces, tmp_path, change):
    root, truth = faces
    out = tmp_path / "out"
    ollama_double.answer = answer_by_image(truth)
    assert cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet").exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key].update(value)
        else:
            manifest[key] = value
    (out / "manifest.json").write_text(json.dumps(manifest))
    for args in (("run", root, "--host", ollama_double.url, "--out", out), ("report", out)):
        one_line_error(cli(*args), "manifest.json")


# -- 11: proxy settings break no Ollama command --------------------------------------------
@pytest.mark.parametrize("variable", ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "http_proxy"])
def test_a_socks_proxy_setting_breaks_no_ollama_command(ollama_double, faces, tmp_path, variable):
    """In a fresh process (importing `ollama` is what failed): the commands work, and no
    request goes through the proxy (nothing listens there)."""
    root, truth = faces
    ollama_double.answer = answer_by_image(truth)
    env = {
        **os.environ,
        variable: "socks5://127.0.0.1:9",
        "EMOPROBE_CACHE_DIR": str(tmp_path / "cache"),
    }
    for args in (
        ("models", "list", "--host", ollama_double.url),
        ("run", str(root), "--host", ollama_double.url, "--out", str(tmp_path / "o"), "--quiet"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "emoprobe", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=Path(emoprobe.__file__).resolve().parents[1],
        )
        assert done.returncode == 0, done.stderr
        assert "internal error" not in done.stderr
    assert len(ollama_double.chat_requests) == len(truth)


# -- 10: server-supplied model details in report.md ---------------------------------------
HOSTILE_DETAILS = {
    "family": "<img src=x onerror=alert(1)>",
    "parameter_size": "[8B](javascript:alert(1))",
    "quantization_level": "Q4_K_M\n\n---\n# pwned <script>alert(1)</script> `x` \\`",
}


def test_model_details_from_the_server_are_inert_in_the_report(cli, faces, tmp_path):
    root, truth = faces
    spec = ModelSpec(name="sly:7b", capabilities=["completion", "vision"], **HOSTILE_DETAILS)
    with OllamaDouble(models=[spec], answer=answer_by_image(truth)) as double:
        out = tmp_path / "out"
        result = cli("run", root, "--host", double.url, "--model", "sly:7b", "--out", out)
        assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "<img" not in report and "<script" not in report
    assert "](javascript:" not in report
    lines = report.splitlines()
    assert "# pwned" not in "\n".join(line[:7] for line in lines)
    assert not any(line.strip() == "---" for line in lines)
    setup = report[report.index("## Model and setup") :]
    assert "&lt;img src=x onerror=alert(1)&gt;" in setup
    assert "[8B]\\(javascript:alert(1))" in setup
    assert "Q4_K_M --- # pwned &lt;script&gt;alert(1)&lt;/script&gt; \\`x\\` \\\\\\`" in setup
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["family"] == HOSTILE_DETAILS["family"]  # kept as the server said


# -- 15: a model typo, and failed starts that leave nothing --------------------------------
def test_a_model_typo_offers_the_close_names_the_server_has(cli, ollama_double, faces, tmp_path):
    root, _ = faces
    out = tmp_path / "reports" / "typo"
    result = cli("run", root, "--host", ollama_double.url, "--model", "qwen2.5-vl:7b", "--out", out)
    message = one_line_error(result, "'qwen2.5-vl:7b' is not on the Ollama server")
    assert "did you mean qwen2.5vl:7b (the server has it)?" in message
    assert message.index("did you mean") < message.index("pull")  # the likely fix first
    assert not (tmp_path / "reports").exists()  # a failed start leaves no folder


def test_an_unknown_model_far_from_any_still_says_how_to_pull_it(cli, ollama_double, faces):
    root, _ = faces
    result = cli("run", root, "--host", ollama_double.url, "--model", "zzz-unknown:1b")
    one_line_error(result, "emoprobe models pull zzz-unknown:1b")


def test_a_failed_start_in_an_existing_empty_folder_leaves_it_empty(cli, faces, tmp_path):
    root, _ = faces
    out = tmp_path / "out"
    out.mkdir()
    result = cli("run", root, "--host", "http://127.0.0.1:9", "--out", out, "--retries", "0")
    assert result.exit_code != 0
    assert list(out.iterdir()) == []


# -- 16: cache export and cache info with typos --------------------------------------------
def test_cache_export_of_a_model_typo_fails_and_writes_no_bundle(
    cli, ollama_double, faces, tmp_path
):
    root, truth = faces
    ollama_double.answer = answer_by_image(truth)
    assert cli("run", root, "--host", ollama_double.url, "--out", tmp_path / "o").exit_code == 0
    bundle = tmp_path / "bundle.jsonl.gz"
    result = cli("cache", "export", bundle, "--model", "qwen2.5vl:7")
    one_line_error(result, "no answers of model 'qwen2.5vl:7'", "did you mean qwen2.5vl:7b?")
    assert not bundle.exists()
    assert cli("cache", "export", bundle, "--model", "qwen2.5vl:7b").exit_code == 0
    assert bundle.exists()


def test_cache_export_of_an_empty_cache_fails(cli, tmp_path):
    result = cli("cache", "export", tmp_path / "b.gz")
    one_line_error(result, "holds no answers")
    assert not (tmp_path / "b.gz").exists()


@pytest.mark.parametrize("command", [("info",), ("clear", "--yes"), ("export", "x.gz")])
def test_a_cache_dir_typo_creates_no_folder(cli, tmp_path, command):
    typo = tmp_path / "typo" / "path"
    result = cli("cache", *command, "--cache-dir", typo)
    one_line_error(result, f"no cache at {typo}: the folder does not exist", "(--cache-dir)")
    assert not (tmp_path / "typo").exists()


# -- 19: synonyms of the task file, used by the parser and shown in the report -------------
@pytest.mark.parametrize(
    ("answer", "label", "word"),
    [
        ("Fatigue", "tired", "fatigue"),
        ("Fatigued.", "tired", "fatigued"),
        ("**Sleepy**", "tired", "sleepy"),
        ("The student is yawning.", "tired", "yawning"),
        ("Puzzled", "confused", "puzzled"),
        ("Looking away", "distracted", "looking away"),
        ("Smiling.", "happy", "smiling"),
        ("Tired.", "tired", None),
        ("Not sleepy at all; happy.", "happy", None),
    ],
)
def test_the_paper_tasks_synonyms_are_read_and_named(answer, label, word):
    from emoprobe.task.definition import PAPER_TASK
    from emoprobe.task.parse import parse_answer, synonym_used

    task = PAPER_TASK
    assert parse_answer(answer, task.labels, task.synonyms) == label
    assert synonym_used(answer, task.labels, task.synonyms) == word


def test_the_shipped_task_file_has_the_same_synonyms():
    from emoprobe.task.definition import PAPER_TASK, load_task

    shipped = Path(__file__).resolve().parents[1] / "examples/tasks/academic-emotion.toml"
    assert load_task(shipped).synonyms == PAPER_TASK.synonyms
    assert PAPER_TASK.synonyms["tired"][:3] == ("fatigue", "fatigued", "sleepy")


def test_the_report_shows_which_answers_a_synonym_mapped(cli, ollama_double, faces, tmp_path):
    root, truth = faces
    tired = sorted(sha for sha, label in truth.items() if label == "tired")
    answers = {**truth, tired[0]: "Fatigued.", tired[1]: "Sleepy"}
    ollama_double.answer = answer_by_image(answers)
    out = tmp_path / "out"
    assert cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet").exit_code == 0
    rows = {row.raw: row for row in read_rows(out / "predictions.csv")}
    assert rows["Fatigued."].prediction == rows["Sleepy"].prediction == "tired"
    report = (out / "report.md").read_text()
    n = len(truth)
    assert f"Answers read through a synonym of the task file: 2 of {n} parsed" in report
    assert "| `fatigued` | tired | 1 |" in report and "| `sleepy` | tired | 1 |" in report
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"]["synonyms"]["tired"][:3] == ["fatigue", "fatigued", "sleepy"]


# -- 18: one file mode for every file of a run, the user's umask's --------------------------
@pytest.fixture
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002], indirect=True)
def test_every_file_of_a_run_gets_the_mode_the_umask_gives(
    cli, ollama_double, faces, tmp_path, umask
):
    root, truth = faces
    ollama_double.answer = answer_by_image(truth)
    out = tmp_path / "out"
    assert cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet").exit_code == 0
    assert cli("report", out).exit_code == 0  # rewritten files keep the same mode
    files = {path.name: path.stat().st_mode & 0o777 for path in out.iterdir() if path.is_file()}
    files.pop(".emoprobe.lock", None)
    wanted = {"report.md", "metrics.json", "manifest.json", "predictions.csv"}
    assert wanted <= set(files) and any(name.endswith(".png") for name in files), files
    assert files == dict.fromkeys(files, 0o666 & ~umask)


def test_classify_reads_a_poisoned_cache_value_as_a_counted_miss(
    cli, ollama_double, faces, isolated_env
):
    root, truth = faces
    ollama_double.answer = answer_by_image(truth)
    image = sorted(root.rglob("*.png"))[0]
    assert cli("classify", image, "--host", ollama_double.url).exit_code == 0
    assert _overwrite_answers(isolated_env, {"raw": 12345}) == 1
    again = cli("classify", image, "--host", ollama_double.url)
    assert again.exit_code == 0, again.output
    assert "cached" not in again.stdout
    assert "warning: 1 cached value(s)" in again.stderr
    assert len(ollama_double.chat_requests) == 2


def test_a_lone_surrogate_in_the_model_details_neither_aborts_the_run(cli, faces, tmp_path):
    root, truth = faces
    spec = ModelSpec(
        name="sly:7b",
        capabilities=["completion", "vision"],
        family="fam\udc80",
        quantization_level="Q\ud800",
    )
    with OllamaDouble(models=[spec], answer=answer_by_image(truth)) as double:
        out = tmp_path / "out"
        result = cli("run", root, "--host", double.url, "--model", "sly:7b", "--out", out)
        assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert (manifest["model"]["family"], manifest["model"]["quantization"]) == (
        "fam\ufffd",
        "Q\ufffd",
    )
    assert "fam\ufffd" in (out / "report.md").read_text(encoding="utf-8")


# -- odd text in answers and server messages -----------------------------------------------
ODD_ANSWERS = {
    0: "tired\r",  # a lone carriage return: csv quotes it only if told to
    1: "happy\r\nreally",
    2: "happy\x00",  # NUL: Python 3.10's csv cannot read it back
    3: "a\u2028b neutral",
    4: "\ufeffconfused",
    5: "\x1b[2J\x1b[31mhappy",
}


def test_odd_characters_in_answers_survive_the_file_and_a_resume(
    cli, ollama_double, faces, tmp_path
):
    root, truth = faces
    answering(ollama_double, truth, ODD_ANSWERS)
    out = tmp_path / "out"
    for _ in range(2):  # the second run recovers the file, then has nothing to do
        result = cli("run", root, "--host", ollama_double.url, "--out", out, "--quiet")
        assert result.exit_code == 0, result.output
    rows = read_rows(out / "predictions.csv")
    assert len(rows) == len(truth)
    raws = {row.raw for row in rows}
    expected = {text.replace("\x00", "\ufffd") for text in ODD_ANSWERS.values()}
    assert expected <= raws
    assert "\x1b" not in result.output


def test_control_characters_in_a_servers_words_never_reach_the_terminal(cli, faces, tmp_path):
    root, _ = faces
    spec = ModelSpec(name="blind:1b", capabilities=["completion", "\x1b[2J\x1b[31mevil\nline"])
    with OllamaDouble(models=[spec]) as double:
        result = cli("run", root, "--host", double.url, "--model", "blind:1b")
    message = one_line_error(result, "cannot read images")
    assert "\x1b" not in message and "\\x1b[2J" in message


def test_an_older_files_unquoted_carriage_return_is_read_as_itself(tmp_path):
    row = Row("happy/000.png", "a" * 64, "tired", "tired", "tired\rnow", "ok", latency_s=0.1)
    path = tmp_path / "predictions.csv"
    line = ",".join(row.cells()) + "\n"  # as emoprobe 0.1 wrote it: the "\r" unquoted
    path.write_text(HEADER + line, newline="")
    assert read_rows(path) == [row]
