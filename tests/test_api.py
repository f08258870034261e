"""The public API (`emoprobe.__all__`), pinned as httpx pins its own, and used as a
notebook would: against the Ollama double, no CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from ollama_double import OllamaDouble
from sklearn.metrics import f1_score

import emoprobe

EXPORTED = {
    "PAPER_TASK",
    "BackendError",
    "CacheError",
    "Comparison",
    "ConfigError",
    "DatasetError",
    "EmoprobeError",
    "ModelNotFound",
    "ModelUnsuitable",
    "Probe",
    "ProbeResult",
    "RequestRejected",
    "RunConfig",
    "RunEvents",
    "RunLockedError",
    "RunRecord",
    "RunResult",
    "ServerUnreachable",
    "StudyFigures",
    "StudyResult",
    "StudySpec",
    "Task",
    "TransientError",
    "WriteError",
    "__version__",
    "compare",
    "load_run",
    "load_study",
    "load_task",
    "parse_answer",
    "run",
    "run_study",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(emoprobe.__all__) == EXPORTED
    for name in emoprobe.__all__:
        assert getattr(emoprobe, name) is not None
    assert sorted(dir(emoprobe)) == sorted(EXPORTED)
    with pytest.raises(AttributeError):
        emoprobe.no_such_name  # noqa: B018


def test_a_notebook_session_runs_the_demo_set_and_reads_per_class_f1(
    ollama_double: OllamaDouble, tmp_path: Path
) -> None:
    result = emoprobe.run(host=ollama_double.url, out=tmp_path / "demo")
    assert result.complete and result.total == 25
    record = emoprobe.load_run(result.out)
    frame = record.predictions
    assert len(frame) == 25
    scored = frame[frame["status"] != "unreadable"]
    per_class = f1_score(
        scored["label"].astype(str),
        scored["prediction"].astype(str),
        labels=list(emoprobe.PAPER_TASK.labels),
        average=None,
        zero_division=0,
    )
    for label, value in zip(emoprobe.PAPER_TASK.labels, per_class, strict=True):
        assert record.metrics.per_class[label].f1 == pytest.approx(value)
    config = emoprobe.RunConfig(
        dataset=Path(record.manifest.dataset.root), host=ollama_double.url, out=result.out
    )
    asked = len(ollama_double.chat_requests)
    again = emoprobe.run(config)
    assert again.complete and again.finished == 25  # resumed: every image already has a row
    assert len(ollama_double.chat_requests) == asked


def test_run_takes_a_config_or_keywords_not_both(tmp_path: Path) -> None:
    config = emoprobe.RunConfig(dataset=tmp_path)
    with pytest.raises(TypeError):
        emoprobe.run(config, model="other")


def test_one_image_through_a_probe_then_from_the_cache(
    ollama_double: OllamaDouble, tmp_path: Path
) -> None:
    image = Path(emoprobe.__file__).resolve().parents[1] / "examples/demo/happy/happy-1.png"
    with emoprobe.Probe.open(host=ollama_double.url) as probe:
        first = probe.classify(image)
        second = probe.classify(image)
    assert first.label in emoprobe.PAPER_TASK.labels or first.label == "unparsed"
    assert not first.cached and second.cached and second.label == first.label


def test_remote_hosts_are_refused_from_python_too() -> None:
    with pytest.raises(emoprobe.ConfigError) as caught:
        emoprobe.RunConfig(dataset=Path("."), host="http://10.0.0.5:11434")
    assert caught.value.setting is not None
    assert "--" not in str(caught.value)  # library messages name no CLI flag


def test_parse_answer_and_load_task() -> None:
    assert emoprobe.parse_answer("The student looks Happy.") == "happy"
    assert emoprobe.parse_answer("no idea") == "unparsed"
    task = emoprobe.load_task(
        Path(emoprobe.__file__).resolve().parents[1] / "examples/tasks/basic-emotions.toml"
    )
    assert emoprobe.parse_answer("happiness", task) == "happiness"


def test_compare_two_runs(ollama_double: OllamaDouble, tmp_path: Path) -> None:
    first = emoprobe.run(host=ollama_double.url, out=tmp_path / "a")
    second = emoprobe.run(host=ollama_double.url, out=tmp_path / "b", answer_mode="json")
    comparison = emoprobe.compare([first.out, second.out])
    assert isinstance(comparison, emoprobe.Comparison)
    assert len(comparison.runs) == 2


def test_the_notebook_example_runs_against_the_double(
    ollama_double: OllamaDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy

    root = Path(emoprobe.__file__).resolve().parents[1]
    monkeypatch.setenv("OLLAMA_HOST", ollama_double.url)
    monkeypatch.chdir(root)
    from emoprobe.pipeline import runner as runner_module

    monkeypatch.setattr(runner_module, "DEFAULT_REPORTS_DIR", tmp_path / "reports")
    namespace = runpy.run_path(str(root / "examples" / "notebook.py"))
    assert namespace["result"].complete
    assert len(namespace["frame"]) == 25
