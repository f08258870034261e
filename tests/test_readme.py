"""Every README block that talks to a model server runs, as written, against the doubles.

Each `sh` block is run by bash in a scratch folder that holds the README's placeholders as
real files (`path/to/dataset`, `path/to/fer2013.csv`, `path/to/DAiSEE`, `face.jpg`) and
`examples/` from the repository. `emoprobe` is this checkout; `ollama` is a small
stand-in that asks the server through the `ollama` client (it knows `pull`); `vllm serve`
is the OpenAI double, already running. Host names of the README (`gpu1`, `gpu2`, vLLM's
port 8000) are replaced by the doubles' addresses, `DATASET` by `path/to/dataset`. A
block fails the test unless every command in it succeeds (`set -e`), so the README's
promises stay true. Python blocks that run or open a probe are run the same way.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import daisee, fer_csv, make_image_folder, write_image
from ollama_double import DEFAULT_LIBRARY, DEFAULT_MODELS, ModelSpec, OllamaDouble
from openai_double import OpenAIDouble

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TALKS_TO_A_SERVER = re.compile(
    r"(?m)(?:^|[\s;&|(])(?:emoprobe\s+(?:run|classify|models|doctor|study)\b|ollama\s|vllm\s)"
    r"|emoprobe\.(?:run|run_study|Probe\.open)\("
)
OLLAMA_STAND_IN = """\
import os, sys
from emoprobe.backends.ollama_client import ollama
if sys.argv[1:2] != ["pull"] or len(sys.argv) != 3:
    sys.exit(f"the test's ollama stand-in knows only `ollama pull NAME`: {sys.argv[1:]}")
ollama.Client(host=os.environ["OLLAMA_HOST"], trust_env=False).pull(sys.argv[2])
"""


def blocks() -> Iterator[tuple[int, str, str]]:
    """(line, language, text) of each fenced block of the README."""
    text = README.read_text(encoding="utf-8")
    for match in re.finditer(r"(?m)^```(\w*)\n(.*?)^```", text, re.S):
        yield text[: match.start()].count("\n") + 1, match.group(1), match.group(2)


SERVER_BLOCKS = [
    pytest.param(language, text, id=f"README.md:{line}")
    for line, language, text in blocks()
    if language in ("sh", "python") and TALKS_TO_A_SERVER.search(text)
]


def test_the_readme_has_server_blocks_and_leads_with_the_demo_run():
    assert len(SERVER_BLOCKS) >= 8
    first = SERVER_BLOCKS[0].values[1]
    assert first.strip().splitlines() == ["ollama pull qwen2.5vl:7b", "emoprobe run"]


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[OllamaDouble, OllamaDouble, OpenAIDouble]]:
    """Two Ollama servers holding the default models and every library model (the README
    assumes what it runs was pulled), and a vLLM."""
    import ollama

    library = _library()
    doubles = [OllamaDouble(models=DEFAULT_MODELS, library=library) for _ in range(2)]
    vllm = OpenAIDouble()
    for server in (*doubles, vllm):
        server.start()
    try:
        for double in doubles:
            client = ollama.Client(host=double.url, trust_env=False)
            for spec in library:
                client.pull(spec.name)
        yield doubles[0], doubles[1], vllm
    finally:
        for server in (*doubles, vllm):
            server.stop()


def _library() -> list[ModelSpec]:
    """The double's library, plus every base tag of emoprobe's builds (the real library
    has them all), each its family's model at that quantization."""
    from emoprobe.ollama_admin.builds import BUILDS

    library = list(DEFAULT_LIBRARY)
    names = {spec.name for spec in library}
    for build in BUILDS:
        if build.base in names:
            continue
        family = next(spec for spec in library if spec.name.startswith(build.family + ":"))
        library.append(
            dataclasses.replace(
                family, name=build.base, digest="", quantization_level=build.quantization.upper()
            )
        )
        names.add(build.base)
    return library


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A folder holding the README's placeholders and the repository's examples/."""
    work = tmp_path / "work"
    make_image_folder(work / "path" / "to" / "dataset", per_label=2)
    fer_csv(work / "path" / "to" / "fer2013.csv", codes=(0, 3, 6, 0, 3, 6))
    daisee(work / "path" / "to" / "DAiSEE")
    write_image(work / "face.jpg")
    (work / "examples").symlink_to(REPO / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shims = {
        "emoprobe": f'#!/bin/sh\nexec "{sys.executable}" -m emoprobe "$@"\n',
        "ollama": f'#!/bin/sh\nexec "{sys.executable}" "{bin_dir / "stand_in.py"}" "$@"\n',
        "vllm": "#!/bin/sh\nexit 0\n",  # the OpenAI double is already serving
    }
    (bin_dir / "stand_in.py").write_text(OLLAMA_STAND_IN)
    for name, text in shims.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return work


def _as_run_here(text: str, servers: tuple[OllamaDouble, OllamaDouble, OpenAIDouble]) -> str:
    first, second, vllm = servers
    for written, actual in (
        ("http://gpu1:11434", first.url),
        ("http://gpu2:11434", second.url),
        ("http://127.0.0.1:8000/v1", vllm.base_url),
    ):
        text = text.replace(written, actual)
    return re.sub(r"\bDATASET\b", "path/to/dataset", text)


@pytest.mark.parametrize(("language", "text"), SERVER_BLOCKS)
def test_a_readme_block_runs_as_written(language, text, servers, scratch, tmp_path):
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "OLLAMA_HOST": servers[0].url,
    }
    script = _as_run_here(text, servers)
    command = (
        ["bash", "-euo", "pipefail", "-c", script]
        if language == "sh"
        else [sys.executable, "-c", script]
    )
    done = subprocess.run(
        command, cwd=scratch, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
