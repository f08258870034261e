"""Client CPU per image, split by stage: emoprobe's own pipeline objects, in this process.

The images go one at a time through `Probe.prepare` and `Probe.send`, as a
worker of `emoprobe run` does them, against the emulator. A clock wraps the stages and
counts this thread's CPU time (`time.thread_time`) exclusive of the stages nested in them:

    image preparation   prepare_image: read, sha256, decode check, payload
    request body        backend.encode: the JSON body with the base64 image, built ahead
    cache lookups       building response keys, the file-hash memo and the answer lookups
    cache writes        the answer and the file hash stored
    request path        Probe.send less its cache write: messages, base64, JSON,
                        HTTP, the streamed reply parsed
    other               the rest of prepare (stat, bookkeeping)

A second pass over the same images (all cached) gives the warm cost per image. Separately,
on the same files: a Pillow decode alone, and base64 of the payload alone.
"""

from __future__ import annotations

import base64
import importlib
import io
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

# (module, attribute, stage): module-level functions the pipeline calls by name.
MODULE_HOOKS = (
    ("emoprobe.pipeline.probe", "prepare_image", "image preparation"),
    ("emoprobe.pipeline.cache", "response_key", "cache lookups"),
)
CACHE_HOOKS = (
    ("get", "cache lookups"),
    ("file_hash", "cache lookups"),
    ("file_hashes", "cache lookups"),
    ("set", "cache writes"),
    ("remember_file_hash", "cache writes"),
)
STAGE_PASSES = 3  # a shared machine's hiccups move one pass by tenths of a ms: the median
STAGES = (
    "image preparation",
    "request body, built ahead",
    "cache lookups",
    "cache writes",
    "request path",
    "other",
)


class StageClock:
    """This thread's CPU seconds per stage, each stage exclusive of those nested in it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []  # [CPU of the nested stages]

    def wrap(self, function: Callable[..., Any], stage: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            self._stack.append([0.0])
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                (nested,) = self._stack.pop()
                self.seconds[stage] += spent - nested
                if self._stack:
                    self._stack[-1][0] += spent

        return timed

    def reset(self) -> None:
        self.seconds.clear()


@contextmanager
def _module_hooks(clock: StageClock) -> Iterator[None]:
    saved = []
    for module_name, attribute, stage in MODULE_HOOKS:
        module = importlib.import_module(module_name)
        if not hasattr(module, attribute):
            raise SystemExit(
                f"stage split: {module_name}.{attribute} is gone; update "
                "benchmarks/stages.py MODULE_HOOKS"
            )
        original = getattr(module, attribute)
        saved.append((module, attribute, original))
        setattr(module, attribute, clock.wrap(original, stage))
    try:
        yield
    finally:
        for module, attribute, original in saved:
            setattr(module, attribute, original)


def stage_split(images: list[Path], url: str, cache_dir: Path) -> dict[str, dict[str, float]]:
    """Milliseconds of client CPU per image by stage: cold (asked) and warm (cached)."""
    from emoprobe.backends.registry import open_backend
    from emoprobe.pipeline.cache import ResponseCache
    from emoprobe.pipeline.probe import Job, Outcome, Probe, describe_model
    from emoprobe.task.definition import PAPER_TASK

    clock = StageClock()
    model = "qwen2.5vl:7b"
    backend = open_backend("ollama", host=url, timeout=60)
    with ResponseCache(cache_dir) as cache:
        try:
            info = describe_model(model, [backend], cache)
            probe = Probe(task=PAPER_TASK, model=model, info=info, cache=cache, backend=backend)
            for name, stage in CACHE_HOOKS:
                if hasattr(cache, name):
                    setattr(cache, name, clock.wrap(getattr(cache, name), stage))
            if hasattr(backend, "encode"):
                backend.encode = clock.wrap(backend.encode, "request body, built ahead")  # type: ignore[method-assign]
            prepare = clock.wrap(probe.prepare, "other")
            request = clock.wrap(probe.send, "request path")
            first = probe.prepare(0, images[0])
            if isinstance(first, Job):
                probe.send(first, backend)  # the model load
            figures = {}
            with _module_hooks(clock):
                for name, paths in (("cold", images[1:]), ("warm", images[1:])):
                    clock.reset()
                    for seq, path in enumerate(paths):
                        prepared = prepare(seq, path)
                        if isinstance(prepared, Job):
                            request(prepared, backend)
                        elif isinstance(prepared, Outcome) and not prepared.cached:
                            raise SystemExit(f"stage split: {path.name}: {prepared.error}")
                    figures[name] = {
                        stage: clock.seconds.get(stage, 0.0) * 1000 / len(paths) for stage in STAGES
                    }
        finally:
            backend.close()
    figures["cold"].update(_library_costs(images[1:]))
    return figures


def median_split(passes: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each figure's median over the passes of `stage_split` (cold and warm alike)."""
    return {
        kind: {name: statistics.median(p[kind][name] for p in passes) for name in passes[0][kind]}
        for kind in passes[0]
    }


def _library_costs(images: list[Path]) -> dict[str, float]:
    """Pillow's decode alone and base64 alone, per image, on this thread's CPU."""
    decode = encode = 0.0
    for path in images:
        data = path.read_bytes()
        started = time.thread_time()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        middle = time.thread_time()
        base64.b64encode(data)
        encode += time.thread_time() - middle
        decode += middle - started
    return {
        "of which decode": decode * 1000 / len(images),
        "of which base64": encode * 1000 / len(images),
    }
