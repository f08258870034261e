"""What every backend provides, and the plain records it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from emoprobe.errors import BackendError, TransientError

# The server's timings an Answer carries (Ollama's names; nanoseconds and token counts).
TIMING_FIELDS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)
# HTTP statuses worth retrying besides 5xx: timeout, too early, rate limit, cancelled.
RETRYABLE_STATUS = frozenset({408, 425, 429, 499})


@dataclass(frozen=True)
class ModelInfo:
    """What the server says about a model before any image is sent."""

    name: str
    digest: str
    server_version: str
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    size_bytes: int = 0
    capabilities: tuple[str, ...] = ()
    backend: str = "ollama"

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["capabilities"] = list(self.capabilities)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ModelInfo:
        known = {name: record[name] for name in cls.__dataclass_fields__ if name in record}
        known["capabilities"] = tuple(known.get("capabilities", ()))
        return cls(**known)


@dataclass(frozen=True)
class Answer:
    """One successful reply: the model's text and the server's timings."""

    raw: str
    latency_s: float
    done_reason: str = ""
    timings: dict[str, int] = field(default_factory=dict)
    logprobs: tuple[dict[str, Any], ...] = ()  # per answer token, when asked for; not cached
    scores: dict[str, float] | None = None  # a probability per label (--answer logprobs)

    def to_cache(self) -> dict[str, Any]:
        value = {
            "raw": self.raw,
            "latency_s": self.latency_s,
            "done_reason": self.done_reason,
            "timings": dict(self.timings),
        }
        if self.scores is not None:
            value["scores"] = dict(self.scores)
        return value

    @classmethod
    def from_cache(cls, value: dict[str, Any]) -> Answer:
        return cls(
            raw=value["raw"],
            latency_s=float(value.get("latency_s") or 0.0),
            done_reason=value.get("done_reason", ""),
            timings=dict(value.get("timings") or {}),
            scores=value.get("scores"),
        )


class Backend(Protocol):
    """A model server. Implementations raise only `emoprobe.errors.BackendError`s."""

    name: str

    def describe(self, model: str) -> ModelInfo:
        """Check the server and the model (reachable, present, can see images)."""
        ...

    def load(self, model: str) -> float:
        """Load the model into memory ahead of the first image; seconds it took."""
        ...

    def chat(
        self,
        model: str,
        messages: list[dict],
        options: dict[str, Any],
        *,
        format: dict[str, Any] | None = None,
        top_logprobs: int = 0,
    ) -> Answer:
        """Send one request and return the complete answer.

        `format`: a JSON schema the answer must follow; `top_logprobs` > 0: return each
        answer token's log-probability and that many alternatives (`Answer.logprobs`).
        """
        ...

    def unload(self, model: str) -> None:
        """Free the model's memory on the server now (a no-op where the API has no way)."""
        ...

    def close(self) -> None: ...


def transport_failure(error: Exception, what: str, timeout: float) -> BackendError | None:
    """Timeouts, dropped connections and garbled replies, as retryable errors.

    The one translation both backends share; None for anything else.
    """
    import httpx

    if isinstance(error, httpx.TimeoutException):
        return TransientError(f"{what} timed out after {timeout:g}s")
    if isinstance(error, httpx.TransportError):
        return TransientError(f"connection dropped during {what} ({type(error).__name__})")
    if isinstance(error, (ValueError, TypeError, KeyError)):
        # json.JSONDecodeError and pydantic's ValidationError are ValueErrors.
        return TransientError(f"malformed reply to {what} ({type(error).__name__})")
    return None
