"""A hostile "Ollama" on 127.0.0.1: a raw socket server that answers like Ollama until told
to misbehave on a path, in the ways a broken or malicious local server can.

    with HostileServer(chat="trickle") as server:
        cli("run", root, "--host", server.url, "--timeout", "0.5")

Each path (`version`, `show`, `tags`, `load` — an empty chat — and `chat`, with an image)
takes one behaviour:

    ok              answers as Ollama does (chat: a two-line stream saying `happy`)
    trickle         the headers, then the body one byte every `interval` seconds, forever
    slow_headers    the status line and headers one byte every `interval` seconds, forever
    hang            reads the request and never answers
    endless_line    a streamed 200 whose body is one line that never ends
    never_done      streamed lines of 1 MiB of content each, none of them `done`
    huge            a 200 claiming 1.5 GB (Content-Length), then zeros as fast as it can
    endless_header  a header line that never ends
    gzip_bomb       a 200 with `Content-Encoding: gzip` that inflates to 256 MiB

Replies are HTTP/1.1 with keep-alive, as Ollama's are; the misbehaviours end only when
the client hangs up or the server stops. `bytes_sent` says, per connection, how much
the server got out: a client that bounds its reads keeps every figure small.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from functools import cache
from typing import Any

MODEL = "hostile:latest"
BEHAVIOURS = frozenset(
    {
        "ok",
        "trickle",
        "slow_headers",
        "hang",
        "endless_line",
        "never_done",
        "huge",
        "endless_header",
        "gzip_bomb",
    }
)
MiB = 1024 * 1024


@cache
def gzip_bomb() -> bytes:
    """256 MiB of zeros, gzipped (about 250 KiB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    return b"".join(packer.compress(block) for _ in range(256)) + packer.flush()


def _json_reply(body: Any, status: str = "200 OK") -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def _stream_reply(lines: list[dict[str, Any]]) -> bytes:
    body = b"".join(_chunk(json.dumps(line).encode() + b"\n") for line in lines)
    return STREAM_HEAD + body + b"0\r\n\r\n"


def _ok(path: str, body: dict[str, Any]) -> bytes:
    if path == "version":
        return _json_reply({"version": "0.13.0"})
    if path == "show":
        return _json_reply(
            {
                "capabilities": ["completion", "vision"],
                "details": {"family": "qwen25vl", "parameter_size": "8.3B"},
                "model_info": {},
            }
        )
    if path == "tags":
        entry = {"name": MODEL, "model": MODEL, "digest": "ab" * 32, "size": 1}
        return _json_reply({"models": [entry]})
    done = {"model": MODEL, "created_at": "2025-01-01T00:00:00Z", "done": True}
    if path == "load":
        return _json_reply({**done, "message": {"role": "assistant", "content": ""}})
    if not body.get("stream", True):
        return _json_reply({**done, "message": {"role": "assistant", "content": "happy"}})
    first = {**done, "done": False, "message": {"role": "assistant", "content": "happy"}}
    last = {**done, "done_reason": "stop", "message": {"role": "assistant", "content": ""}}
    return _stream_reply([first, last])


class HostileServer:
    """See the module doc; `HostileServer(chat="hang", interval=0.2)`."""

    def __init__(self, interval: float = 0.2, **behaviour: str) -> None:
        unknown = {kind for kind in behaviour.values() if kind not in BEHAVIOURS}
        if unknown:
            raise ValueError(f"unknown behaviours: {sorted(unknown)}")
        self.behaviour = behaviour
        self.interval = interval
        self.requests: list[str] = []
        self.bytes_sent: list[int] = []  # one figure per connection
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> HostileServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    # -- serving ----------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.bytes_sent.append(0)
                index = len(self.bytes_sent) - 1
            thread = threading.Thread(target=self._serve, args=(connection, index), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket, index: int) -> None:
        connection.settimeout(2.0)
        reader = connection.makefile("rb")
        try:
            while not self._stop.is_set():
                request = self._read_request(reader)
                if request is None:
                    return
                path, body = request
                with self._lock:
                    self.requests.append(path)
                kind = self.behaviour.get(path, "ok")
                if not self._reply(connection, index, kind, path, body):
                    return
        except OSError:
            return  # the client hung up, or a send timed out: what a client that bounds does
        finally:
            reader.close()
            connection.close()

    def _read_request(self, reader: Any) -> tuple[str, dict[str, Any]] | None:
        while True:
            try:
                line = reader.readline(65536)
            except TimeoutError:
                if self._stop.is_set():
                    return None
                continue
            break
        if not line:
            return None
        method, target = line.decode("latin-1").split()[:2]
        length = 0
        while (header := reader.readline(65536)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = json.loads(reader.read(length) or b"{}") if length else {}
        return _route(method, target, body), body

    def _send(self, connection: socket.socket, index: int, data: bytes) -> None:
        connection.sendall(data)
        with self._lock:
            self.bytes_sent[index] += len(data)

    def _reply(
        self, connection: socket.socket, index: int, kind: str, path: str, body: dict[str, Any]
    ) -> bool:
        """Answer one request; False when the connection is done with."""
        send = lambda data: self._send(connection, index, data)  # noqa: E731
        if kind == "ok":
            send(_ok(path, body))
            return True
        if kind == "hang":
            self._stop.wait()
            return False
        if kind == "trickle":
            reply = _ok(path, body)
            head, _, rest = reply.partition(b"\r\n\r\n")
            send(head + b"\r\n\r\n")
            self._trickle(send, rest or b" ")
        elif kind == "slow_headers":
            self._trickle(send, _ok(path, body))
        elif kind == "endless_header":
            send(b"HTTP/1.1 200 OK\r\nX-Padding: ")
            self._forever(send, b"a" * 65536)
        elif kind == "endless_line":
            send(STREAM_HEAD)
            self._forever(send, _chunk(b"a" * 65536))
        elif kind == "never_done":
            send(STREAM_HEAD)
            content = "x" * MiB
            line = {"model": MODEL, "done": False, "message": {"role": "assistant", "content": ""}}
            line["message"]["content"] = content
            self._forever(send, _chunk(json.dumps(line).encode() + b"\n"))
        elif kind == "huge":
            send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            send(b"Content-Length: 1500000000\r\n\r\n")
            self._forever(send, bytes(MiB))
        elif kind == "gzip_bomb":
            data = gzip_bomb()
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Encoding: gzip\r\nContent-Length: {len(data)}\r\n\r\n"
            )
            send(head.encode() + data)
            return True
        return False

    def _trickle(self, send: Any, data: bytes) -> None:
        """`data` one byte at a time, every `interval` seconds, then the same again."""
        while not self._stop.is_set():
            for byte in data:
                if self._stop.wait(self.interval):
                    return
                send(bytes([byte]))

    def _forever(self, send: Any, block: bytes) -> None:
        while not self._stop.is_set():
            send(block)
            time.sleep(0)


def _route(method: str, target: str, body: dict[str, Any]) -> str:
    path = target.split("?")[0]
    if path == "/api/chat":
        return "chat" if body.get("messages") else "load"
    return {"/api/version": "version", "/api/show": "show", "/api/tags": "tags"}.get(path, path)


__all__ = ["MODEL", "HostileServer", "gzip_bomb"]
