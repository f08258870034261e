"""`emoprobe doctor`'s checks: server, version, builds, vision, GPU memory, parallel slots, disk."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from emoprobe.backends.server_support import (
    LOGPROBS_SINCE,
    ServerSupport,
    can_serve,
    parse_server_version,
    support_for,
)
from emoprobe.errors import BackendError, EmoprobeError, ModelNotFound
from emoprobe.ollama_admin import builds
from emoprobe.ollama_admin.admin import ModelServer, human_size, model_key
from emoprobe.ollama_admin.builds import BUILDS

LOW_DISK_BYTES = 2 * 10**9
OK, WARN, FAIL = "✓", "!", "✗"


class NotReady(EmoprobeError):
    """`emoprobe doctor` found that a run cannot start."""


class Check(NamedTuple):
    """One line of `emoprobe doctor`: a mark (✓ ! ✗), a topic, what was found, a fix."""

    mark: str
    topic: str
    text: str
    fix: str = ""


class Diagnosis(NamedTuple):
    """The checks, and whether a run can start (else why not; if so, with which model)."""

    checks: list[Check]
    ready: bool
    reason: str = ""
    suggested_model: str = ""


def diagnose(host: str, cache_dir: Path, environ: Mapping[str, str]) -> Diagnosis:
    """Everything `emoprobe doctor` checks; ready when the server is up with a vision model."""
    checks: list[Check] = []
    reason = suggested = ""
    with ModelServer(host) as server:
        try:
            version = server.version()
        except BackendError as error:
            if "not as an Ollama server" in str(error):
                text, fix = f"{host} answers, but not as an Ollama server", "check --host URL"
            else:
                text, fix = f"no Ollama server answers at {host}", "ollama serve"
            checks.append(Check(FAIL, "server", text, fix))
            reason = text
        else:
            checks.append(Check(OK, "server", f"Ollama answers at {host}"))
            checks.append(_version_check(version))
            parsed = parse_server_version(version)
            support = support_for(parsed) if parsed else None
            if support is not None:
                checks.append(_engine_check(support))
            model_checks, suggested = _model_checks(server, support)
            checks += model_checks
            if not suggested:
                reason = "no model on the server reads images"
            checks += _loaded_checks(server)
    checks.append(_parallel_check(environ))
    checks.append(_disk_check(cache_dir))
    return Diagnosis(checks, not reason, reason, suggested)


def _version_check(version: str) -> Check:
    parsed = parse_server_version(version)
    if parsed is None:
        return Check(
            WARN,
            "version",
            f"Ollama {version!r}: cannot tell its features from it (a source build says "
            "0.0.0); runs go on as asked",
        )
    if parsed < LOGPROBS_SINCE:
        text = f"Ollama {version} is older than {LOGPROBS_SINCE}: no logprobs"
        return Check(WARN, "version", text, "upgrade Ollama: https://ollama.com/download")
    return Check(OK, "version", f"Ollama {version}")


def _engine_check(support: ServerSupport) -> Check:
    """What this version does that changes a run: engine, thinking, slots, image tokens."""
    parts = [
        "GGUF models run in llama-server" if support.engine == "llama-server" else "Go engine",
        "thinking models think unless sent think:false (emoprobe sends it)"
        if support.thinks_by_default
        else "no thinking by default",
    ]
    if support.single_slot_families:
        parts.append("one request at a time for " + ", ".join(sorted(support.single_slot_families)))
    if support.qwen_vl_min_image_tokens:
        parts.append(f"Qwen-VL images cost at least {support.qwen_vl_min_image_tokens:,} tokens")
    if support.unloadable_families:
        parts.append("cannot load " + ", ".join(sorted(support.unloadable_families)))
    return Check(OK, "features", f"Ollama {support.version}: " + "; ".join(parts))


def _model_checks(
    server: ModelServer, support: ServerSupport | None = None
) -> tuple[list[Check], str]:
    installed = server.installed()
    vision = []
    families: dict[str, str] = {}
    for key, model in installed.items():
        try:
            family = server.vision_family(model.name)
        except ModelNotFound:
            continue  # removed meanwhile
        if family is None:
            continue
        families[key] = family
        if support is None or can_serve(support, family) is None:
            vision.append(key)
    checks = []
    missing = []
    for build in BUILDS:
        built = installed.get(model_key(build.name))
        unservable = can_serve(support, build.arch) if support is not None else None
        if unservable:
            state = "built" if built else "not built"
            text = f"{build.name} ({build.key}, {state}): {unservable}"
            checks.append(Check(FAIL, "build", text))
        elif built is None:
            missing.append(build)
        elif model_key(build.name) in vision:
            checks.append(Check(OK, "build", f"{build.name} ({build.key}): built, reads images"))
        else:
            fix = f"emoprobe models rm {build.key} && emoprobe models build {build.key}"
            text = f"{build.name}: built, but its capabilities lack vision"
            checks.append(Check(FAIL, "build", text, fix))
    if missing:
        keys = ", ".join(build.key for build in missing)
        fix = (
            "emoprobe models build NAME  (to compare quantizations)"
            if len(missing) < len(BUILDS)
            else f"emoprobe models build {missing[0].key}"
        )
        checks.append(Check(WARN, "build", f"not built: {keys}", fix))
    built_vision = [b.name for b in BUILDS if model_key(b.name) in vision]
    names = [installed[key].name for key in vision]
    refused = [installed[key].name for key in families if key not in vision]
    if refused and support is not None:
        text = (
            f"{len(refused)} model(s) read images but cannot run on Ollama "
            f"{support.version}: {', '.join(refused[:6])}"
        )
        fix = "an Ollama 0.24.x server, or vLLM with --backend openai"
        checks.append(Check(FAIL, "vision", text, fix))
    if names:
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        checks.append(Check(OK, "vision", f"{len(names)} model(s) read images: {shown}"))
    else:
        fix = f"emoprobe models build {BUILDS[0].key}  (or: ollama pull qwen2.5vl:7b)"
        checks.append(Check(FAIL, "vision", "no model on the server reads images", fix))
    suggested = built_vision[0] if built_vision else (names[0] if names else "")
    return checks, suggested


def _loaded_checks(server: ModelServer) -> list[Check]:
    loaded = server.loaded()
    if not loaded:
        return [Check(OK, "loaded", "no model loaded now")]
    checks = []
    for model in loaded:
        share = model.gpu_share
        text = f"{model.name}  {human_size(model.size)}  {share:.0%} GPU"
        if share >= 0.995:
            checks.append(Check(OK, "loaded", text.replace(f"{share:.0%}", "100%")))
            continue
        build = builds.resolve(model.name)
        smaller = builds.smallest(build.family) if build else None
        if build is not None and smaller is not None and smaller != build:
            fix = f"emoprobe models build {smaller.key}  (a smaller quantization)"
        else:
            fix = "close other programs that use the GPU, or use a smaller model"
        checks.append(Check(WARN, "loaded", f"{text}: the rest runs on the CPU, much slower", fix))
    return checks


def _parallel_check(environ: Mapping[str, str]) -> Check:
    raw = environ.get("OLLAMA_NUM_PARALLEL", "").strip()
    if not raw:
        return Check(OK, "parallel", "server default (1 since 0.10.0): run with --concurrency 2")
    if not raw.isdigit() or int(raw) < 1:
        return Check(
            WARN,
            "parallel",
            f"OLLAMA_NUM_PARALLEL={raw!r} is not a positive integer",
            "unset OLLAMA_NUM_PARALLEL  (or set it to 1, 2, …)",
        )
    slots = int(raw)
    return Check(
        OK,
        "parallel",
        f"OLLAMA_NUM_PARALLEL={slots} in this shell (the server reads its own environment): "
        f"run with --concurrency {slots + 1}",
    )


def _disk_check(cache_dir: Path) -> Check:
    probe = cache_dir
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as error:
        return Check(WARN, "disk", f"cannot read free space at {cache_dir}: {error.strerror}")
    text = f"{human_size(free)} free at the cache folder {cache_dir}"
    if free < LOW_DISK_BYTES:
        fix = "emoprobe run … --cache-dir DIR  (a folder on a disk with room)"
        return Check(WARN, "disk", f"only {text}", fix)
    return Check(OK, "disk", text)
