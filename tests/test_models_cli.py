"""`emoprobe models …` and `emoprobe doctor` end to end, against the Ollama test double."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import pytest
from click.testing import Result
from conftest import Cli
from factories import make_image_folder
from ollama_double import (
    DEFAULT_LIBRARY,
    DEFAULT_MODELS,
    ModelSpec,
    NotOllamaServer,
    OllamaDouble,
)
from rich.console import Console

import emoprobe
from emoprobe.cli.progress import PullProgress
from emoprobe.ollama_admin import builds
from emoprobe.ollama_admin.admin import Progress
from emoprobe.ollama_admin.modelfile import parameter_value
from emoprobe.task.definition import PAPER_TASK
from emoprobe.task.model_options import DEFAULT_OPTIONS

REPO_MODELFILES = Path(__file__).resolve().parent.parent / "modelfiles"
Q4 = builds.BUILDS[0]  # qwen2.5vl-q4
LLAMA_FP16 = builds.BUILDS[5]
SIZES = {
    "q4_K_M": 6_000_000_000,
    "q8_0": 9_400_000_000,
    "fp16": 16_600_000_000,
    "bf16": 16_600_000_000,
}
PARAMETERS = {"qwen25vl": "8.3B", "mllama": "10.7B", "qwen3vl": "8.8B", "gemma3": "4.3B"}
SCALE = {"qwen25vl": 10, "mllama": 13, "qwen3vl": 11, "gemma3": 5}  # tenths of Qwen2.5-VL's


def base_spec(build: builds.Build) -> ModelSpec:
    """The library tag of a build, as the double serves it."""
    return ModelSpec(
        name=build.base,
        family=build.arch,
        parameter_size=PARAMETERS[build.arch],
        quantization_level=build.quantization.upper(),
        capabilities=["completion", "vision"],
        size=SIZES[build.quantization] * SCALE[build.arch] // 10,
    )


LIBRARY = (*DEFAULT_LIBRARY, *(base_spec(b) for b in builds.BUILDS))


@pytest.fixture(autouse=True)
def repo_modelfiles_untouched() -> Iterator[None]:
    """No test may write into the repository's modelfiles/ (user state is in the data dir)."""
    before = {path.name: path.read_bytes() for path in REPO_MODELFILES.iterdir()}
    yield
    assert {path.name: path.read_bytes() for path in REPO_MODELFILES.iterdir()} == before


@pytest.fixture
def server() -> Iterator[OllamaDouble]:
    """The double with the default models, and the six base tags in its library."""
    with OllamaDouble(models=DEFAULT_MODELS, library=LIBRARY) as double:
        yield double


@pytest.fixture
def modelfiles(tmp_path: Path) -> Path:
    folder = tmp_path / "modelfiles"
    shutil.copytree(REPO_MODELFILES, folder)
    return folder


def models(cli: Cli, command: str, double: OllamaDouble, *args: object) -> Result:
    return cli("models", command, *args, "--host", double.url)


def lock() -> dict:
    return json.loads(builds.lock_path().read_text(encoding="utf-8"))["builds"]


def table(text: str) -> dict[str, list[str]]:
    """Rows of a printed table by their first cell (cells are separated by 2+ spaces)."""
    lines = [line for line in text.splitlines() if line and not line.startswith(("note", "build"))]
    return {cells[0]: cells for cells in (re.split(r" {2,}", line) for line in lines)}


def paths(double: OllamaDouble) -> list[str]:
    return [record.path for record in double.requests]


# -- list ------------------------------------------------------------------------------
def test_list_before_anything_is_pulled(cli, server: OllamaDouble) -> None:
    result = models(cli, "list", server)
    assert result.exit_code == 0, result.output
    rows = table(result.stdout)
    assert rows["NAME"] == ["NAME", "MODEL", "FAMILY", "QUANT", "SIZE", "DIGEST", "PULLED", "BUILT"]
    assert len(rows) == 1 + len(builds.BUILDS) == 13
    assert rows["qwen2.5vl-q4"] == [
        "qwen2.5vl-q4",
        Q4.name,
        "Qwen2.5-VL 7B",
        "q4_K_M",
        "–",
        "–",
        "no",
        "no",
    ]
    assert rows["llama3.2-vision-fp16"][1:4] == [LLAMA_FP16.name, "Llama 3.2 Vision 11B", "fp16"]
    assert "build one with: emoprobe models build qwen2.5vl-q4" in result.stdout


def test_list_shows_size_digest_pulled_and_built(cli, server: OllamaDouble) -> None:
    assert models(cli, "build", server, "qwen2.5vl-q4").exit_code == 0
    assert models(cli, "pull", server, "llama3.2-vision-q8").exit_code == 0
    result = models(cli, "list", server)
    assert result.exit_code == 0, result.output
    rows = table(result.stdout)
    built = server.models[Q4.name]
    assert rows["qwen2.5vl-q4"][4:] == ["6.0 GB", built.digest[:12], "yes", "yes"]
    base = server.models[builds.BUILDS[4].base]
    assert rows["llama3.2-vision-q8"][4:] == ["12 GB", base.digest[:12], "yes", "no"]
    assert rows["qwen2.5vl-fp16"][4:] == ["–", "–", "no", "no"]


def test_list_with_the_server_down_is_one_line(cli) -> None:
    double = OllamaDouble().start()
    double.stop()
    result = models(cli, "list", double)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot reach Ollama at {double.url}")
    assert len(result.stderr.splitlines()) == 1


# -- pull ------------------------------------------------------------------------------
def test_pull_draws_a_line_per_layer_and_records_the_digest(cli, server: OllamaDouble) -> None:
    result = models(cli, "pull", server, "qwen2.5vl-q4")
    assert result.exit_code == 0, result.output
    base = server.models[Q4.base]
    assert f"pulled {Q4.base}  6.0 GB  digest {base.digest[:12]}" in result.stdout
    lines = result.stderr.splitlines()
    assert lines[:2] == [f"pulling {Q4.base}", "  pulling manifest"]
    assert lines[-3:] == ["  verifying sha256 digest", "  writing manifest", "  success"]
    layers = [line for line in lines if re.fullmatch(r"  pulling [0-9a-f]{12}  .+", line)]
    assert len(layers) == len(set(layers)) == 6  # model, projector, 4 small: one line each
    assert "\x1b" not in result.stderr and "\r" not in result.stderr  # not a terminal
    entry = lock()[Q4.name]
    assert entry["base"] == Q4.base
    assert entry["base_digest"] == base.digest
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["pulled_at"])
    assert entry["digest"] is None


@pytest.mark.parametrize(
    "name",
    ["qwen2.5vl:7b-q4_K_M", "emoprobe-qwen2.5vl:7b-q4_K_M", "QWEN2.5VL-Q4", "qwen2.5vl-q4_K_M"],
)
def test_pull_accepts_every_spelling_of_a_build(cli, server: OllamaDouble, name: str) -> None:
    result = models(cli, "pull", server, name)
    assert result.exit_code == 0, result.output
    assert Q4.base in server.models
    assert lock()[Q4.name]["base_digest"]


def test_pull_all(cli, server: OllamaDouble) -> None:
    result = models(cli, "pull", server, "--all")
    assert result.exit_code == 0, result.output
    assert {b.base for b in builds.BUILDS} <= set(server.models)
    assert all(entry["base_digest"] for entry in lock().values())
    assert (
        "Digests as the Ollama server reported them"
        in json.loads(builds.lock_path().read_text())["note"]
    )


def test_pull_any_other_library_tag_records_nothing(cli, server: OllamaDouble) -> None:
    result = models(cli, "pull", server, "llava:7b")
    assert result.exit_code == 0, result.output
    assert "llava:7b" in server.models
    assert not builds.lock_path().exists()


def test_pull_a_tag_the_library_lacks(cli, server: OllamaDouble) -> None:
    result = models(cli, "pull", server, "nosuch:1b")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "pulling nosuch:1b",
        "  pulling manifest",
        "error: nosuch:1b is not in the Ollama library (pull model manifest: file does not "
        "exist): check the name at https://ollama.com/library",
    ]
    result = models(cli, "pull", server, "qwen2.5vl-q5")  # a mistyped key
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "; the builds are qwen2.5vl-q4, qwen2.5vl-q8, "
        "qwen2.5vl-fp16, llama3.2-vision-q4, llama3.2-vision-q8, "
        "llama3.2-vision-fp16, qwen3-vl-q4, qwen3-vl-q8, qwen3-vl-bf16, gemma3-q4, "
        "gemma3-q8, gemma3-fp16\n"
    )


@pytest.mark.parametrize(
    ("args", "message"), [((), "give a NAME"), (("qwen2.5vl-q4", "--all"), "not both")]
)
def test_pull_needs_one_name_or_all(
    cli, server: OllamaDouble, args: tuple[str, ...], message: str
) -> None:
    result = models(cli, "pull", server, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "/api/pull" not in paths(server)


def test_progress_on_a_terminal_redraws_one_bar() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=120, color_system=None)
    progress = PullProgress(console)
    update = progress.start("qwen2.5vl:7b-q4_K_M")
    update(Progress("pulling manifest"))
    for completed in (0, 500, 1000):  # two layers, interleaved as parallel downloads are
        update(Progress("pulling aaaaaaaaaaaa", "sha256:" + "a" * 64, 1000, completed))
        update(Progress("pulling bbbbbbbbbbbb", "sha256:" + "b" * 64, 3000, completed * 3))
    update(Progress("success"))
    progress.close()
    text = stream.getvalue()
    assert "\r\x1b[2K  " in text  # redrawn in place
    assert re.search(r"100% 4\.0/4\.0 kB .* 2/2 layers", text)
    assert re.search(r" 0% 0\.0/1\.0 kB .* 0/1 layers", text)
    assert "1/2 layers" in text
    finished = [line for line in re.split(r"[\r\n]", text) if "pulling aaaa" in line]
    assert len(finished) == 1 and finished[0].endswith("  pulling aaaaaaaaaaaa  1.0 KB")
    assert "\r\x1b[2K  success\n" in text
    assert text.endswith("\x1b[2K")  # the bar is cleared at the end


def test_progress_elsewhere_writes_one_plain_line_per_layer() -> None:
    stream = io.StringIO()
    progress = PullProgress(Console(file=stream))
    update = progress.start("x:1b")
    for completed in (0, 10, 20):
        for digest in ("a", "b"):
            update(Progress(f"pulling {digest * 12}", f"sha256:{digest * 64}", 20, completed))
    progress.close()
    assert stream.getvalue() == (
        "pulling x:1b\n  pulling aaaaaaaaaaaa  20 B\n  pulling bbbbbbbbbbbb  20 B\n"
    )


# -- build -----------------------------------------------------------------------------
def test_build_pulls_then_creates_with_the_papers_prompt(cli, server: OllamaDouble) -> None:
    result = models(cli, "build", server, "qwen2.5vl-q4")
    assert result.exit_code == 0, result.output
    requests = [r for r in server.requests if r.path in ("/api/pull", "/api/create")]
    assert [r.path for r in requests] == ["/api/pull", "/api/create"]
    assert requests[0].json["model"] == Q4.base
    body = requests[1].json
    assert body["model"] == Q4.name
    assert body["from"] == Q4.base
    assert body["system"] == PAPER_TASK.system_prompt
    assert body["parameters"] == {
        "temperature": 0.0,
        "seed": 42,
        "num_predict": 32,
        "num_ctx": 4096,
    }
    with ollama.Client(host=server.url) as client:
        shown = client.show(Q4.name)
    assert "vision" in (shown.capabilities or [])
    # the server's own Modelfile of the build
    assert f'SYSTEM """{PAPER_TASK.system_prompt}"""' in (shown.modelfile or "")
    served = dict(line.split(None, 1) for line in (shown.parameters or "").splitlines())
    assert {k: parameter_value(k, v) for k, v in served.items()} == {
        **DEFAULT_OPTIONS,
        "num_ctx": 4096,
    }
    assert httpx.post(f"{server.url}/api/show", json={"model": Q4.name}).json()["system"] == (
        PAPER_TASK.system_prompt
    )
    built = server.models[Q4.name]
    entry = lock()[Q4.name]
    assert entry["digest"] == built.digest
    assert entry["base_digest"] == server.models[Q4.base].digest
    assert entry["pulled_at"] and entry["built_at"]
    assert f"built {Q4.name}  digest {built.digest[:12]}" in result.stdout
    assert f"run it: emoprobe run DATASET --model {Q4.name}" in result.stdout
    assert f"pulling {Q4.base}" in result.stderr and f"creating {Q4.name}" in result.stderr


def test_build_uses_a_base_already_pulled(cli, server: OllamaDouble) -> None:
    server.add_model(base_spec(Q4))
    result = models(cli, "build", server, Q4.name)
    assert result.exit_code == 0, result.output
    assert "/api/pull" not in paths(server)
    entry = lock()[Q4.name]
    assert entry["base_digest"] == server.models[Q4.base].digest
    assert entry["pulled_at"] is None  # seen, not pulled by emoprobe
    assert entry["digest"] == server.models[Q4.name].digest


def test_build_all(cli, server: OllamaDouble) -> None:
    result = models(cli, "build", server, "--all")
    assert result.exit_code == 0, result.output
    for build in builds.BUILDS:
        assert server.models[build.name].system == PAPER_TASK.system_prompt
        assert lock()[build.name]["digest"] == server.models[build.name].digest


def test_build_warns_about_an_edited_modelfile_and_builds_it(
    cli, server: OllamaDouble, modelfiles: Path
) -> None:
    path = modelfiles / Q4.filename
    path.write_text(path.read_text().replace("num_ctx 4096", "num_ctx 8192"))
    result = models(cli, "build", server, "qwen2.5vl-q4", "--modelfiles", modelfiles)
    assert result.exit_code == 0, result.output
    assert "differs from what `emoprobe models render` writes" in result.stderr
    assert "num_ctx 8192" in server.models[Q4.name].parameters


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace("PARAMETER seed 42", "PARAMETER seed forty-two"),
            "line 27: parameter seed must be an integer, not 'forty-two'",
        ),
        (lambda t: t.replace('categories."""', "categories."), 'line 16: unterminated """ quote'),
        (
            lambda t: t.replace("FROM qwen2.5vl:7b-q4_K_M", "FROM qwen2.5vl:7b"),
            "says FROM qwen2.5vl:7b but qwen2.5vl-q4 is built from qwen2.5vl:7b-q4_K_M",
        ),
    ],
)
def test_build_refuses_a_broken_modelfile_before_any_download(
    cli, server: OllamaDouble, modelfiles: Path, edit, message: str
) -> None:
    path = modelfiles / Q4.filename
    path.write_text(edit(path.read_text()))
    result = models(cli, "build", server, "qwen2.5vl-q4", "--modelfiles", modelfiles)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr
    assert not {"/api/pull", "/api/create"} & set(paths(server))


def test_build_needs_its_modelfile(cli, server: OllamaDouble, modelfiles: Path) -> None:
    (modelfiles / Q4.filename).unlink()
    result = models(cli, "build", server, "qwen2.5vl-q4", "--modelfiles", modelfiles)
    assert result.exit_code == 1
    assert "is missing: write it with `emoprobe models render" in result.stderr


def test_build_an_unknown_name(cli, server: OllamaDouble) -> None:
    result = models(cli, "build", server, "qwen2.5vl-q5")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "error: unknown build 'qwen2.5vl-q5': choose one of "
        "qwen2.5vl-q4, qwen2.5vl-q8, qwen2.5vl-fp16,"
    )


def test_modelfiles_folder_must_exist(cli, server: OllamaDouble, tmp_path: Path) -> None:
    result = models(cli, "build", server, "qwen2.5vl-q4", "--modelfiles", tmp_path / "nowhere")
    assert result.exit_code == 1
    assert "is not a folder" in result.stderr
    assert result.stderr.rstrip().endswith("(--modelfiles)")


def test_build_needs_no_modelfiles_folder_and_leaves_the_repository_alone(
    cli, server: OllamaDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no modelfiles/ here
    result = models(cli, "build", server, "qwen2.5vl-q4")
    assert result.exit_code == 0, result.output
    assert f"recorded in {tmp_path / 'data' / builds.LOCK_NAME}" in result.stdout
    assert lock()[Q4.name]["digest"] == server.models[Q4.name].digest
    assert not (REPO_MODELFILES / builds.LOCK_NAME).exists()
    assert not (REPO_MODELFILES / "lock.json").exists()


def test_an_installed_package_builds_from_anywhere(server: OllamaDouble, tmp_path: Path) -> None:
    """What `pip install .` installs (the package's files only), run from another folder."""
    site = tmp_path / "site-packages"

    def not_installed(folder: str, names: list[str]) -> list[str]:
        kept = (".py", "py.typed")
        return [
            n
            for n in names
            if n == "__pycache__" or (not (Path(folder) / n).is_dir() and not n.endswith(kept))
        ]

    shutil.copytree(Path(emoprobe.__file__).parent, site / "emoprobe", ignore=not_installed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "EMOPROBE_DATA_DIR": str(tmp_path / "user")}

    def python(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True
        )

    imported = python("-c", "import emoprobe; print(emoprobe.__file__)")
    assert imported.stdout.strip() == str(site / "emoprobe" / "__init__.py")
    built = python("-m", "emoprobe", "models", "build", "qwen2.5vl-q4", "--host", server.url)
    assert built.returncode == 0, built.stderr
    assert server.models[Q4.name].system == PAPER_TASK.system_prompt
    recorded = json.loads((tmp_path / "user" / builds.LOCK_NAME).read_text(encoding="utf-8"))
    assert recorded["builds"][Q4.name]["digest"] == server.models[Q4.name].digest
    assert list(elsewhere.iterdir()) == []  # nothing written where it ran


def test_run_accepts_a_built_name(cli, server: OllamaDouble, tmp_path: Path) -> None:
    assert models(cli, "build", server, "qwen2.5vl-q4").exit_code == 0
    root = tmp_path / "faces"
    make_image_folder(root, per_label=1)
    result = cli(
        "run", root, "--model", Q4.name, "--host", server.url, "--out", tmp_path / "out", "--quiet"
    )
    assert result.exit_code == 0, result.output
    chats = server.chat_requests
    assert len(chats) == 5 and {c["model"] for c in chats} == {Q4.name}
    assert chats[0]["messages"][0] == {"role": "system", "content": PAPER_TASK.system_prompt}


def test_run_with_a_missing_model_names_both_fixes(
    cli, server: OllamaDouble, tmp_path: Path
) -> None:
    root = tmp_path / "faces"
    make_image_folder(root, per_label=1)
    result = cli("run", root, "--model", "nosuch:1b", "--host", server.url, "--quiet")
    assert result.exit_code == 1
    assert "run `emoprobe models pull nosuch:1b` or `ollama pull nosuch:1b`" in result.stderr
    result = cli("run", root, "--model", Q4.name, "--host", server.url, "--quiet")
    assert result.exit_code == 1
    assert f"run `emoprobe models build {Q4.name}`" in result.stderr


# -- verify ----------------------------------------------------------------------------
def test_verify_with_nothing_recorded(cli, server: OllamaDouble) -> None:
    result = models(cli, "verify", server)
    assert result.exit_code == 0, result.output
    assert "nothing recorded in" in result.stdout


def test_verify_after_a_build_then_a_changed_digest(cli, server: OllamaDouble) -> None:
    assert models(cli, "build", server, "qwen2.5vl-q4").exit_code == 0
    result = models(cli, "verify", server)
    assert result.exit_code == 0, result.output
    rows = table(result.stdout)
    assert rows[Q4.base][1:] == ["base", server.models[Q4.base].digest[:12]] * 1 + [
        server.models[Q4.base].digest[:12],
        "ok",
    ]
    assert rows[Q4.name][-1] == "ok"
    assert "every recorded digest matches the server" in result.stdout

    server.models[Q4.name].digest = "0" * 64  # rebuilt elsewhere, or tampered with
    result = models(cli, "verify", server)
    assert result.exit_code == 1
    assert table(result.stdout)[Q4.name][3:] == ["000000000000", "DIFFERS"]
    assert result.stderr.startswith("error: 1 model(s) differ from ")
    assert f"{Q4.name} (differs)" in result.stderr
    assert f" {Q4.base} (" not in result.stderr  # the base still matches


def test_verify_names_a_missing_model(cli, server: OllamaDouble) -> None:
    assert models(cli, "build", server, "qwen2.5vl-q4").exit_code == 0
    server.remove_model(Q4.base)  # `ollama rm` behind emoprobe's back
    result = models(cli, "verify", server)
    assert result.exit_code == 1
    assert f"{Q4.base} (missing)" in result.stderr


# -- rm --------------------------------------------------------------------------------
def test_rm_a_build_keeps_its_base(cli, server: OllamaDouble) -> None:
    assert models(cli, "build", server, "qwen2.5vl-q4").exit_code == 0
    result = models(cli, "rm", server, "qwen2.5vl-q4")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"removed {Q4.name}\n"
    assert Q4.name not in server.models and Q4.base in server.models
    entry = lock()[Q4.name]
    assert entry["digest"] is None and entry["built_at"] is None and entry["base_digest"]
    assert models(cli, "verify", server).exit_code == 0

    result = models(cli, "rm", server, "qwen2.5vl-q4")
    assert result.exit_code == 1
    assert f"error: {Q4.name} not on the Ollama server at {server.url}" in result.stderr


def test_rm_with_base(cli, server: OllamaDouble) -> None:
    assert models(cli, "build", server, "qwen2.5vl-q4").exit_code == 0
    result = models(cli, "rm", server, "qwen2.5vl-q4", "--with-base")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"removed {Q4.name}\nremoved {Q4.base}\n"
    assert not {Q4.name, Q4.base} & set(server.models)
    assert not any(lock()[Q4.name][k] for k in ("digest", "base_digest"))


def test_rm_by_base_tag_removes_the_base(cli, server: OllamaDouble) -> None:
    assert models(cli, "build", server, "qwen2.5vl-q4").exit_code == 0
    result = models(cli, "rm", server, Q4.base)
    assert result.exit_code == 0, result.output
    assert Q4.base not in server.models and Q4.name in server.models


# -- render ----------------------------------------------------------------------------
def test_render_writes_and_checks(cli, tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    result = cli("models", "render", "--modelfiles", folder)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("wrote") == len(builds.BUILDS)
    for build in builds.BUILDS:
        assert (folder / build.filename).read_bytes() == (
            REPO_MODELFILES / build.filename
        ).read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted(b.filename for b in builds.BUILDS)
    assert cli("models", "render", "--check", "--modelfiles", folder).exit_code == 0
    again = cli("models", "render", "--modelfiles", folder)
    assert again.stdout.count("unchanged") == len(builds.BUILDS)

    path = folder / Q4.filename
    path.write_text(path.read_text().replace("seed 42", "seed 7"))
    result = cli("models", "render", "--check", "--modelfiles", folder)
    assert result.exit_code == 1
    assert f"differ from the build table: {Q4.filename}" in result.stderr
    result = cli("models", "render", "--modelfiles", folder)
    assert f"wrote     {path}" in result.stdout
    assert builds.is_current(folder, Q4)


# -- doctor ----------------------------------------------------------------------------
def doctor(cli: Cli, double: OllamaDouble | str, *args: object) -> Result:
    host = double if isinstance(double, str) else double.url
    return cli("doctor", "--host", host, *args)


def marks(result: Result) -> dict[str, list[str]]:
    """Doctor's lines by topic: the mark and the rest of the line."""
    found: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        if line[:1] in "✓!✗":
            mark, topic, text = line.split(None, 2)
            found.setdefault(topic, []).append(f"{mark} {text}")
    return found


def test_doctor_ready(cli, server: OllamaDouble, tmp_path: Path) -> None:
    assert models(cli, "build", server, "qwen2.5vl-q4").exit_code == 0
    result = doctor(cli, server, "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    lines = marks(result)
    assert lines["server"] == [f"✓ Ollama answers at {server.url}"]
    assert lines["version"] == ["✓ Ollama 0.13.0"]
    assert lines["features"] == [
        "✓ Ollama 0.13.0: Go engine; thinking models think unless sent think:false "
        "(emoprobe sends it); one request at a time for mllama, qwen3vl, qwen3vlmoe"
    ]
    assert lines["build"][0] == f"✓ {Q4.name} (qwen2.5vl-q4): built, reads images"
    assert lines["build"][1].startswith("! not built: qwen2.5vl-q8, qwen2.5vl-fp16,")
    assert lines["build"][1].endswith("→ emoprobe models build NAME  (to compare quantizations)")
    assert lines["vision"][0].startswith("✓ 4 model(s) read images: ")
    assert lines["loaded"] == ["✓ no model loaded now"]
    assert lines["parallel"] == ["✓ server default (1 since 0.10.0): run with --concurrency 2"]
    assert re.fullmatch(
        rf"✓ \S+ \w+ free at the cache folder {tmp_path / 'cache'}", lines["disk"][0]
    )
    assert not any(line.startswith("✗") for group in lines.values() for line in group)
    assert result.stdout.splitlines()[-1] == f"ready: emoprobe run DATASET --model {Q4.name}"


def test_doctor_shows_what_is_loaded_and_its_gpu_share(cli, server: OllamaDouble) -> None:
    with ollama.Client(host=server.url) as client:
        client.chat("qwen2.5vl:7b", messages=[])  # loads it
    result = doctor(cli, server)
    assert result.exit_code == 0, result.output
    assert marks(result)["loaded"] == ["✓ qwen2.5vl:7b  6.9 GB  100% GPU"]

    in_memory = int(server.models["qwen2.5vl:7b"].size * 1.15)  # what /api/ps reports
    server.gpu_memory = int(in_memory * 0.48) + 1
    loaded = marks(doctor(cli, server))["loaded"]
    assert loaded == [
        "! qwen2.5vl:7b  6.9 GB  48% GPU: the rest runs on the CPU, much slower  "
        "→ close other programs that use the GPU, or use a smaller model"
    ]
    server.gpu_memory = 0
    assert marks(doctor(cli, server))["loaded"][0].startswith("! qwen2.5vl:7b  6.9 GB  0% GPU")


def test_doctor_suggests_a_smaller_build_when_a_build_does_not_fit(
    cli, server: OllamaDouble
) -> None:
    assert models(cli, "build", server, "llama3.2-vision-fp16").exit_code == 0
    server.gpu_memory = 8_000_000_000
    with ollama.Client(host=server.url) as client:
        client.chat(LLAMA_FP16.name, messages=[])
    loaded = marks(doctor(cli, server))["loaded"][0]
    assert " 32% GPU" in loaded
    assert loaded.endswith("→ emoprobe models build llama3.2-vision-q4  (a smaller quantization)")


def test_doctor_warns_about_an_old_server(cli) -> None:
    with OllamaDouble(version="0.12.10") as double:
        result = doctor(cli, double)
    assert result.exit_code == 0, result.output
    assert marks(result)["version"] == [
        "! Ollama 0.12.10 is older than 0.12.11: no logprobs  "
        "→ upgrade Ollama: https://ollama.com/download"
    ]


def test_doctor_reads_the_parallel_setting(
    cli, server: OllamaDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "2")
    parallel = marks(doctor(cli, server))["parallel"][0]
    assert parallel.startswith("✓ OLLAMA_NUM_PARALLEL=2 in this shell")
    monkeypatch.setenv("OLLAMA_NUM_PARALLEL", "many")
    parallel = marks(doctor(cli, server))["parallel"][0]
    assert parallel.startswith("! OLLAMA_NUM_PARALLEL='many' is not")


def test_doctor_with_the_server_down(cli, tmp_path: Path) -> None:
    double = OllamaDouble().start()
    double.stop()
    result = doctor(cli, double, "--cache-dir", tmp_path)
    assert result.exit_code == 1
    assert marks(result)["server"] == [
        f"✗ no Ollama server answers at {double.url}  → ollama serve"
    ]
    assert set(marks(result)) == {"server", "parallel", "disk"}  # the local checks still run
    assert result.stderr == f"error: not ready to run: no Ollama server answers at {double.url}\n"


def test_doctor_with_another_web_server_on_the_port(cli) -> None:
    with NotOllamaServer() as other:
        result = doctor(cli, other.url)
    assert result.exit_code == 1
    assert marks(result)["server"] == [
        f"✗ {other.url} answers, but not as an Ollama server  → check --host URL"
    ]


def test_doctor_without_a_vision_model(cli) -> None:
    text_only = [spec for spec in DEFAULT_MODELS if "vision" not in spec.capabilities]
    with OllamaDouble(models=text_only) as double:
        result = doctor(cli, double)
    assert result.exit_code == 1
    assert marks(result)["vision"] == [
        "✗ no model on the server reads images  → emoprobe models build qwen2.5vl-q4  "
        "(or: ollama pull qwen2.5vl:7b)"
    ]
    assert marks(result)["build"] == [
        "! not built: qwen2.5vl-q4, qwen2.5vl-q8, qwen2.5vl-fp16, llama3.2-vision-q4, "
        "llama3.2-vision-q8, llama3.2-vision-fp16, qwen3-vl-q4, qwen3-vl-q8, qwen3-vl-bf16, "
        "gemma3-q4, gemma3-q8, gemma3-fp16  → emoprobe models build qwen2.5vl-q4"
    ]
    assert result.stderr == "error: not ready to run: no model on the server reads images\n"


def test_doctor_flags_a_build_that_cannot_see(cli, server: OllamaDouble) -> None:
    server.add_model(ModelSpec(name=Q4.name, capabilities=["completion"]))
    lines = marks(doctor(cli, server))["build"]
    assert lines[0] == (
        f"✗ {Q4.name}: built, but its capabilities lack vision  "
        "→ emoprobe models rm qwen2.5vl-q4 && emoprobe models build qwen2.5vl-q4"
    )


def test_commands_refuse_a_remote_host(cli) -> None:
    for args in (["doctor"], ["models", "list"], ["models", "pull", "qwen2.5vl-q4"]):
        result = cli(*args, "--host", "http://192.0.2.1:11434")
        assert result.exit_code == 1
        assert "refusing to send images to non-local host" in result.stderr
        assert "allow remote hosts if you mean it (--allow-remote)" in result.stderr


def test_importing_the_commands_stays_light() -> None:
    code = (
        "import sys, emoprobe.cli\n"
        "heavy = {'ollama', 'httpx', 'emoprobe.ollama_admin.admin'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_render_bakes_a_task_files_prompt_into_another_folder(cli, tmp_path):
    from emoprobe.task.definition import load_task

    tasks = Path(__file__).resolve().parent.parent / "examples" / "tasks"
    task_path = tasks / "basic-emotions.toml"
    result = cli("models", "render", "--task", task_path, "--modelfiles", tmp_path / "basic")
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "basic").glob("*.Modelfile"))
    assert len(written) == len(builds.BUILDS)
    system = load_task(task_path).system_prompt
    assert all(system in path.read_text() for path in written)
    refused = cli("models", "render", "--task", str(task_path))
    assert refused.exit_code == 1 and "--task needs --modelfiles" in refused.stderr
