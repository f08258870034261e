"""Runs of the Ollama double over the real-face check set (examples/faces), for tests.

Three "models": qwen answers every face right but one, which gets an answer holding
HTML; llama calls every third face the other class; the logprobs run is qwen with scores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from ollama_double import OllamaDouble, image_sha256s

from emoprobe.cli.main import cli
from emoprobe.data.images import prepare_image

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "examples" / "faces"
LABELS_CSV = FACES / "labels.csv"
TASK = REPO / "examples" / "tasks" / "faces-happy-neutral.toml"
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
HOSTILE_FACE = "025"  # this person's answers are HOSTILE, hence unparsed
RUNS = {
    "qwen": ("qwen2.5vl:7b", ()),
    "llama": ("llama3.2-vision:11b", ()),
    "qwen-logprobs": ("qwen2.5vl:7b", ("--answer", "logprobs")),
}


def face_truth() -> dict[str, tuple[str, str]]:
    """sha256 of the bytes sent for each face -> (true label, person id)."""
    truth = {}
    for path in sorted(FACES.glob("*/*.jpg")):
        payload = prepare_image(path).payload
        assert payload is not None
        truth[hashlib.sha256(payload).hexdigest()] = (path.parent.name, path.stem)
    return truth


def face_answers() -> Callable[[dict[str, Any]], str]:
    truth = face_truth()

    def answer(body: dict[str, Any]) -> str:
        label, person = truth[image_sha256s(body)[-1]]
        if person == HOSTILE_FACE:
            return HOSTILE
        if body["model"].startswith("llama") and int(person) % 3 == 0:
            return "The person is smiling." if label == "neutral" else "neutral"
        return label.capitalize()

    return answer


def emoprobe(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def run_faces(out: Path, host: str, model: str, *extra: object) -> Result:
    return emoprobe(
        "run",
        LABELS_CSV,
        "--task",
        TASK,
        "--host",
        host,
        "--quiet",
        "--model",
        model,
        "--out",
        out,
        "--cache-dir",
        out.parent / "cache",
        *extra,
    )


def make_face_runs(base: Path) -> dict[str, Path]:
    """The three runs of RUNS under `base`, made against one OllamaDouble."""
    folders = {}
    with OllamaDouble(answer=face_answers()) as double:
        for name, (model, extra) in RUNS.items():
            result = run_faces(base / name, double.url, model, *extra)
            assert result.exit_code == 0, result.output
            folders[name] = base / name
    return folders
