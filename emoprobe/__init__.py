"""emoprobe: probe vision-language models, zero-shot, on facial-expression tasks.

import emoprobe
result = emoprobe.run(model="qwen2.5vl:7b")          # the demo set, local Ollama
record = emoprobe.load_run(result.out)
record.predictions                                   # a pandas DataFrame, one row per image
with emoprobe.Probe.open("qwen2.5vl:7b") as probe:   # one image: cache → model → label
    print(probe.classify("face.jpg").label)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from emoprobe._version import __version__

if TYPE_CHECKING:
    from emoprobe.api import compare, parse_answer, run, run_study
    from emoprobe.errors import (
        BackendError,
        CacheError,
        ConfigError,
        DatasetError,
        EmoprobeError,
        ModelNotFound,
        ModelUnsuitable,
        RequestRejected,
        RunLockedError,
        ServerUnreachable,
        TransientError,
        WriteError,
    )
    from emoprobe.pipeline.config import RunConfig
    from emoprobe.pipeline.probe import Probe, ProbeResult
    from emoprobe.pipeline.runner import RunEvents, RunResult
    from emoprobe.pipeline.study import StudyResult
    from emoprobe.pipeline.study_file import StudySpec, load_study
    from emoprobe.results.comparison import Comparison
    from emoprobe.results.load import RunRecord, load_run
    from emoprobe.results.study import StudyFigures
    from emoprobe.task.definition import PAPER_TASK, Task, load_task

# Imported on first use, so that `import emoprobe` (and the CLI's start) stays light.
_EXPORTS = {
    "BackendError": "emoprobe.errors",
    "CacheError": "emoprobe.errors",
    "Comparison": "emoprobe.results.comparison",
    "ConfigError": "emoprobe.errors",
    "DatasetError": "emoprobe.errors",
    "EmoprobeError": "emoprobe.errors",
    "ModelNotFound": "emoprobe.errors",
    "ModelUnsuitable": "emoprobe.errors",
    "PAPER_TASK": "emoprobe.task.definition",
    "Probe": "emoprobe.pipeline.probe",
    "ProbeResult": "emoprobe.pipeline.probe",
    "RequestRejected": "emoprobe.errors",
    "RunConfig": "emoprobe.pipeline.config",
    "RunEvents": "emoprobe.pipeline.runner",
    "RunLockedError": "emoprobe.errors",
    "RunRecord": "emoprobe.results.load",
    "RunResult": "emoprobe.pipeline.runner",
    "ServerUnreachable": "emoprobe.errors",
    "StudyFigures": "emoprobe.results.study",
    "StudyResult": "emoprobe.pipeline.study",
    "StudySpec": "emoprobe.pipeline.study_file",
    "Task": "emoprobe.task.definition",
    "TransientError": "emoprobe.errors",
    "WriteError": "emoprobe.errors",
    "compare": "emoprobe.api",
    "load_run": "emoprobe.results.load",
    "load_study": "emoprobe.pipeline.study_file",
    "load_task": "emoprobe.task.definition",
    "parse_answer": "emoprobe.api",
    "run": "emoprobe.api",
    "run_study": "emoprobe.api",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'emoprobe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
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
]
