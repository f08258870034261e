"""HTTP that a broken or hostile server cannot stretch: a total deadline and a size cap.

httpx bounds each single wait on the socket, so a server that trickles one byte every
half second holds a request forever, and a reply is read whole into memory however large
it is. `BoundedTransport` bounds every request as a whole:

* a deadline: connect, send, headers and body must all be done within the request's
  own timeout (the `read` part of httpx's `Timeout`), or it fails as a timeout;
* a size cap: no more than `max_bytes` are read from the socket for one reply, headers
  included (h11 already caps the headers at 100 KiB); the `ReplyTooLarge` error says so;
* no compression: emoprobe asks for `identity`, and a reply compressed anyway is refused
  (`ReplyRefused`) before anything decodes it, so a gzip bomb is never inflated.

Connections stay pooled and kept alive as httpx does it; the bounds are per request and
per thread (httpx's sync client reads the socket in the thread that asked).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

MAX_REPLY_BYTES = 16 * 1024 * 1024
KEEP_ALIVE_CONNECTIONS = 256  # one per in-flight request; httpx keeps only 20 by default


class ReplyTooLarge(httpx.TransportError):
    """The server sent more than the cap for one reply."""


class ReplyRefused(httpx.TransportError):
    """The server sent a reply emoprobe will not read (compressed though asked not to be)."""


class _Bounds:
    """One request's deadline and byte budget."""

    def __init__(self, seconds: float | None, max_bytes: int) -> None:
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.seconds = seconds
        self.left = max_bytes
        self.max_bytes = max_bytes

    def wait(self, timeout: float | None) -> float | None:
        """The longest a socket operation may wait now; a timeout once the deadline passed."""
        if self.deadline is None:
            return timeout
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise httpcore.ReadTimeout(f"no complete reply within {self.seconds:g}s")
        return remaining if timeout is None else min(timeout, remaining)

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise ReplyTooLarge(f"the reply is larger than {self.max_bytes // 2**20} MiB")


_current = threading.local()


def _bounds() -> _Bounds | None:
    return getattr(_current, "bounds", None)


class _Stream(httpcore.NetworkStream):
    """A socket whose reads and writes keep to the current request's bounds."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        bounds = _bounds()
        if bounds is None:
            return self._inner.read(max_bytes, timeout)
        data = self._inner.read(max_bytes, bounds.wait(timeout))
        bounds.spend(len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        bounds = _bounds()
        self._inner.write(buffer, bounds.wait(timeout) if bounds else timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Network(httpcore.NetworkBackend):
    """httpcore's sockets, wrapped in `_Stream`s; connecting keeps to the deadline too."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounds = _bounds()
        wait = bounds.wait(timeout) if bounds else timeout
        return _Stream(self._inner.connect_tcp(host, port, wait, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _BoundedBody(httpx.SyncByteStream):
    """A reply's body, read under the bounds of the request that asked for it."""

    def __init__(self, inner: Iterable[bytes], bounds: _Bounds) -> None:
        self._inner = inner
        self._bounds = bounds

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            with _bounded(self._bounds):
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


@contextmanager
def _bounded(bounds: _Bounds) -> Iterator[None]:
    """Make `bounds` the current thread's bounds for the duration of a `with`."""
    previous, _current.bounds = _bounds(), bounds
    try:
        yield
    finally:
        _current.bounds = previous


class BoundedTransport(httpx.BaseTransport):
    """httpx's own transport under a total deadline and a size cap per request."""

    def __init__(self, max_bytes: int = MAX_REPLY_BYTES) -> None:
        limits = httpx.Limits(max_keepalive_connections=KEEP_ALIVE_CONNECTIONS)
        self._inner = httpx.HTTPTransport(limits=limits, trust_env=False)
        pool = self._inner._pool  # httpx has no parameter for httpcore's network backend
        if not isinstance(pool, httpcore.ConnectionPool):  # pragma: no cover - httpx changed
            raise TypeError("emoprobe needs httpx's plain connection pool")
        pool._network_backend = _Network(pool._network_backend)
        self.max_bytes = max_bytes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.headers["Accept-Encoding"] = "identity"
        seconds = (request.extensions.get("timeout") or {}).get("read")
        bounds = _Bounds(seconds, self.max_bytes)
        with _bounded(bounds):
            response = self._inner.handle_request(request)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise ReplyRefused(f"the server compressed its reply ({encoding}) though asked not to")
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _BoundedBody(response.stream, bounds)
        return response

    def close(self) -> None:
        self._inner.close()


def client_options(timeout: float) -> dict[str, Any]:
    """The settings of every HTTP client to a model server: no proxy, no redirect, bounded."""
    return {
        "timeout": httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        "trust_env": False,
        "follow_redirects": False,
        "transport": BoundedTransport(),
    }
