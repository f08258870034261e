"""A short smoke test of `emoprobe run` against the Ollama double, for the floor venv.

.ci/run installs every dependency at its floor (.ci/floor_constraints.py) and runs this
with that venv's Python: text answers from a thinking Qwen3-VL on a 0.34 server,
logprobs answers (the client's ChatResponse.logprobs) on a 0.13 server, `doctor`,
mllama refused on 0.34, and `compare` of the two runs. Exit 0 when all hold; else one
line per failure.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from ollama_double import CURRENT_MODELS, DEFAULT_MODELS, OllamaDouble  # noqa: E402

from emoprobe.data.demo import make_demo  # noqa: E402

MODELS = (*DEFAULT_MODELS, *CURRENT_MODELS)


def emoprobe(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "emoprobe", *map(str, args)]
    if args[0] == "run":
        command += ["--retries", "0", "--timeout", "20"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def main() -> int:
    failures: list[str] = []

    def check(condition: bool, what: str, result: subprocess.CompletedProcess[str]) -> None:
        if not condition:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
            failures.append(f"{what} (exit {result.returncode}: {tail[0]})")

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        env = {
            **os.environ,
            "EMOPROBE_CACHE_DIR": str(work / "cache"),
            "EMOPROBE_DATA_DIR": str(work / "data"),
        }
        env.pop("OLLAMA_HOST", None)
        faces = work / "faces"
        make_demo(faces)
        with OllamaDouble(models=MODELS, version="0.34.1") as new:
            new.answer = lambda body: "happy"
            out = work / "qwen3"
            result = emoprobe(
                "run",
                faces,
                "--model",
                "qwen3-vl:8b",
                "--host",
                new.url,
                "--out",
                out,
                "--per-class",
                2,
                "--quiet",
                env=env,
            )
            check(result.returncode == 0 and (out / "report.md").is_file(), "run on 0.34", result)
            sent = [b for b in new.chat_requests if b.get("messages")]
            check(bool(sent) and all(b.get("think") is False for b in sent), "think:false", result)
            doctor = emoprobe("doctor", "--host", new.url, env=env)
            check(doctor.returncode == 0, "doctor on 0.34", doctor)
            refused = emoprobe(
                "run",
                faces,
                "--model",
                "llama3.2-vision:11b",
                "--host",
                new.url,
                "--out",
                work / "llama",
                env=env,
            )
            check(refused.returncode == 1 and "0.24.x" in refused.stderr, "mllama refused", refused)
        with OllamaDouble(models=MODELS, version="0.13.0") as old:
            old.answer = lambda body: "happy"
            out = work / "logprobs"
            result = emoprobe(
                "run",
                faces,
                "--host",
                old.url,
                "--out",
                out,
                "--answer",
                "logprobs",
                "--per-class",
                2,
                "--quiet",
                env=env,
            )
            ok = result.returncode == 0 and (out / "predictions.csv").is_file()
            if ok:
                with (out / "predictions.csv").open(encoding="utf-8") as file:
                    rows = list(csv.DictReader(file))
                ok = bool(rows) and any(k.startswith("score_") and rows[0][k] for k in rows[0])
            check(ok, "logprobs run on 0.13", result)
        compared = emoprobe(
            "compare", work / "qwen3", work / "logprobs", "--out", work / "compared", env=env
        )
        check(
            compared.returncode == 0 and (work / "compared" / "comparison.md").is_file(),
            "compare (scipy, the bootstrap)",
            compared,
        )
    for failure in failures:
        print(f"smoke: FAILED {failure}", file=sys.stderr)
    if not failures:
        print("smoke: run, doctor, think:false, mllama refusal, logprobs and compare hold")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
