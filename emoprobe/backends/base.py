"""What every backend provides: a typed request in, a plain answer out."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from emoprobe.errors import BackendError, RequestRejected, ServerUnreachable, TransientError
from emoprobe.files import writable_text

if TYPE_CHECKING:
    import httpx

# HTTP statuses worth retrying besides 5xx: timeout, too early, rate limit, cancelled.
RETRYABLE_STATUS = frozenset({408, 425, 429, 499})
# "Too many requests now": the server is alive and full; send it fewer at a time.
BUSY_STATUS = frozenset({429, 503})
# The longest answer kept: the task wants one word; a model that runs on past this is cut
# off there (its `done_reason` becomes TRUNCATED) and the image's row says `truncated`.
MAX_ANSWER_CHARS = 32_768
TRUNCATED = "truncated"


@dataclass(frozen=True)
class ModelInfo:
    """What the server says about a model before any image is sent; its words are kept
    as said, but never with a lone surrogate no file can hold."""

    name: str
    digest: str
    server_version: str
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    size_bytes: int = 0
    capabilities: tuple[str, ...] = ()
    backend: str = "ollama"
    language_weights: str = ""  # tensor types /api/show lists ("" = not reported)
    vision_weights: str = ""  # of the vision tower and projector (v.*, mm.*)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, str):
                object.__setattr__(self, name, writable_text(value))
            elif isinstance(value, tuple):
                cleaned = tuple(writable_text(v) if isinstance(v, str) else v for v in value)
                object.__setattr__(self, name, cleaned)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["capabilities"] = list(self.capabilities)
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ModelInfo:
        known = {name: record[name] for name in cls.__dataclass_fields__ if name in record}
        known["capabilities"] = tuple(known.get("capabilities", ()))
        return cls(**known)


@dataclass(frozen=True)
class ChatRequest:
    """One image put to one model, the image never in the repr; `format`: a JSON schema the
    answer must follow; `top_logprobs` > 0: that many alternatives per answer token."""

    model: str
    system: str
    user_text: str
    image: bytes = field(repr=False)
    image_mime: str
    options: Mapping[str, Any] = field(default_factory=dict)
    format: Mapping[str, Any] | None = None
    top_logprobs: int = 0


@dataclass(frozen=True)
class Answer:
    """One successful reply: the model's text and what the server says it cost."""

    raw: str
    latency_s: float
    done_reason: str = ""
    prompt_tokens: int = 0
    prompt_ms: float = 0.0
    output_tokens: int = 0
    output_ms: float = 0.0
    """Tokens and server milliseconds of the prompt and of the answer; these and the two
    times below (loading the model, in all) are 0 where the server does not say."""
    load_ms: float = 0.0
    total_ms: float = 0.0
    logprobs: tuple[Mapping[str, Any], ...] = ()  # per answer token, when asked for
    # logprobs mode: per word that names a label, (its labels, a probability per label)
    label_positions: tuple[tuple[tuple[str, ...], Mapping[str, float]], ...] = ()
    thinking_chars: int = 0  # length of the thinking text the server sent beside the answer

    def __post_init__(self) -> None:
        # A lone surrogate ("\udc80", valid JSON) can be neither written nor cached.
        object.__setattr__(self, "raw", writable_text(self.raw))


def capped(answer: Answer) -> Answer:
    """`answer`, cut to MAX_ANSWER_CHARS and marked TRUNCATED if it is longer."""
    if len(answer.raw) <= MAX_ANSWER_CHARS:
        return answer
    return replace(answer, raw=answer.raw[:MAX_ANSWER_CHARS], done_reason=TRUNCATED)


class Backend(Protocol):
    """A model server. Implementations raise only `emoprobe.errors.BackendError`s."""

    name: str
    host: str  # the server's URL as messages show it

    def server_version(self) -> str:
        """A light request that proves the server answers; its version ("unknown")."""

    def describe(self, model: str) -> ModelInfo:
        """Check the server and the model (reachable, present, can see images)."""

    def load(self, model: str, options: Mapping[str, Any] | None = None) -> float:
        """Load the model with the run's options before the first image; seconds it took."""

    def encode(self, request: ChatRequest) -> bytes:
        """The request's HTTP body (the image in base64), to build ahead of `chat`."""

    def chat(self, request: ChatRequest, body: bytes | None = None) -> Answer:
        """Send one request (as `body`, its `encode`, when given); the complete answer."""

    def ignored_options(self, options: Mapping[str, Any]) -> list[str]:
        """The options this server's API has no field for, sorted (they are not sent)."""

    def unload(self, model: str) -> None:
        """Free the model's memory on the server now (a no-op where the API has no way)."""

    def context_length(self, model: str) -> int | None:
        """The context the loaded model runs with (None where the server does not say)."""

    def close(self) -> None: ...


def close_names(name: str, names: Iterable[str], most: int = 3) -> list[str]:
    """The names most like `name` (a typo's likely targets), best first."""
    return difflib.get_close_matches(name, sorted(set(names)), n=most, cutoff=0.6)


@contextmanager
def translated(
    what: str, timeout: float, unreachable: str, *, otherwise: bool = False
) -> Iterator[None]:
    """httpx's failures inside as emoprobe's errors, for both backends: a refused
    connection as ServerUnreachable(`unreachable`), the rest as `transport_failure`
    says; any other httpx error re-raised, or with `otherwise` a TransientError."""
    import httpx

    try:
        yield
    except BackendError:
        raise
    except (ConnectionError, httpx.ConnectError):
        raise ServerUnreachable(unreachable, setting="host") from None
    except (httpx.HTTPError, ValueError, TypeError, KeyError) as error:
        failure = transport_failure(error, what, timeout)
        if failure is None and otherwise:
            failure = TransientError(f"{what} failed ({type(error).__name__})")
        if failure is None:
            raise
        raise failure from None


def transport_failure(error: Exception, what: str, timeout: float) -> BackendError | None:
    """Timeouts, dropped connections and garbled replies as retryable errors, else None."""
    import httpx

    from emoprobe.backends.bounded import ReplyRefused, ReplyTooLarge

    if isinstance(error, (ReplyTooLarge, ReplyRefused)):
        return RequestRejected(f"{what}: {error}")
    if isinstance(error, httpx.RemoteProtocolError) and "too long" in str(error):
        # h11 refuses headers past httpcore's cap (100 KiB) with "Receive buffer too long"
        return RequestRejected(f"{what}: the reply's headers are longer than 100 KiB")
    if isinstance(error, httpx.TimeoutException):
        return TransientError(f"{what} timed out after {timeout:g}s")
    if isinstance(error, httpx.TransportError):
        return TransientError(f"connection dropped during {what} ({type(error).__name__})")
    if isinstance(error, (ValueError, TypeError, KeyError)):
        # json.JSONDecodeError and pydantic's ValidationError are ValueErrors.
        return TransientError(f"malformed reply to {what} ({type(error).__name__})")
    return None


def not_the_server(
    host: str, kind: str, response: httpx.Response, what: str, fix: str = ""
) -> ServerUnreachable:
    """ServerUnreachable: `host` answered `what`, but not as `kind` of server would."""
    content = response.headers.get("content-type", "no content type").split(";")[0]
    return ServerUnreachable(
        f"{host} answers, but not as {kind} ({what} gave HTTP {response.status_code}, "
        f"{content}): check the host{fix}",
        host=host,
        setting="host",
    )
