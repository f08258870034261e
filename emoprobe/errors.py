"""emoprobe's exceptions: every error a user can cause or meet derives from `EmoprobeError`.

The CLI turns each into one line on stderr and a non-zero exit, in one place (`cli.main`).
The backends translate the `ollama` client's and `httpx`'s exceptions into these at one
boundary (`emoprobe.backends.ollama`), so nothing above them sees a library error.
"""

from __future__ import annotations

from pathlib import Path


class EmoprobeError(Exception):
    """Base class: its message is one line a user can act on.

    Fields say what the error is about, for code that wants to react to it: `host`,
    `model`, `status` (an HTTP status), `path`, and `setting` (the `RunConfig` field or
    setting at fault, e.g. `"out"` or `"concurrency"`; the CLI names the flag for it).
    Messages name no command-line flag: the CLI adds those.
    """

    def __init__(
        self,
        message: str = "",
        *,
        host: str | None = None,
        model: str | None = None,
        status: int | None = None,
        path: Path | str | None = None,
        setting: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.host = host
        self.model = model
        self.status = status
        self.path = Path(path) if path is not None else None
        self.setting = setting


class DatasetError(EmoprobeError):
    """The dataset is missing, empty or malformed."""


class ConfigError(EmoprobeError):
    """A bad option, host, task or output folder."""


class CacheError(EmoprobeError):
    """The cache directory cannot be opened or used."""


class RunLockedError(EmoprobeError):
    """Another emoprobe process is writing into the same output folder."""


class WriteError(EmoprobeError):
    """A run's files could not be written: what was written before is kept."""


class BackendError(EmoprobeError):
    """Talking to the model server failed."""


class ServerUnreachable(BackendError):
    """Nothing (or not an Ollama server) answers at the host."""


class ModelNotFound(BackendError):
    """The server does not have the model."""


class ModelUnsuitable(BackendError):
    """The model lacks a capability the task needs (e.g. vision)."""


class ModelUnservable(ModelUnsuitable):
    """This server cannot run this model at all (e.g. mllama on Ollama 0.30 and later)."""


class ServerRedirected(BackendError):
    """The server answered with a redirect: emoprobe never follows one (the images are faces)."""


class TransientError(BackendError):
    """A failure worth retrying: busy or failing server, timeout, dropped or garbled reply."""


class RequestRejected(BackendError):
    """The server refused the request itself (HTTP 4xx); retrying will not help."""


def one_line(text: str) -> str:
    """`text` as one printable line: whitespace runs as one space, and `printable`."""
    return printable(" ".join(str(text).split()))


def printable(text: str) -> str:
    """`text` with control and format characters escaped, newlines too (a server's or a
    file name's text must not move a terminal's cursor or start a line of its own)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
