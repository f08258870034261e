"""An Ollama emulator for benchmarks: it behaves like `ollama serve` on the costs that matter.

Real HTTP/1.1 with keep-alive on 127.0.0.1; `GET /api/version`, `GET /api/tags`,
`POST /api/show` (a vision model), `POST /api/chat` streamed (chunked ndjson) or whole.
A chat request waits for one of `slots` (a semaphore; beyond them requests queue, as
`OLLAMA_NUM_PARALLEL` does); inside its slot it decodes its base64 image and the image
itself with Pillow, as the real server does, then waits out a fixed prefill and paces its
tokens, so one answer holds its slot for `service` seconds (or longer, when the decode is
slower than the prefill). Every request is recorded: the client's port, when it arrived,
when it got and left its slot, when its answer ended.

    python benchmarks/emulator.py --slots 4 --service 0.1      # prints its URL, then serves
    GET  /_stats   every answered request, the connections opened, the server's CPU seconds
    POST /_reset   forget the records (between two measurements on one server)

Not a test double: it knows no faults and one model. Tests of behaviour use
tests/ollama_double.py.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import io
import json
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

MODEL = "qwen2.5vl:7b"
DIGEST = hashlib.sha256(b"emulated " + MODEL.encode()).hexdigest()
VERSION = "0.13.0"
LABELS = ("confused", "distracted", "happy", "tired", "neutral")
TOKENS_PER_ANSWER = 8
PREFILL_SHARE = 0.6  # of the service time; the rest paces the tokens


@dataclass
class ChatRecord:
    """One chat request with an image, as the server saw it (monotonic seconds)."""

    port: int
    arrived: float  # the request's headers were read
    slot_start: float = 0.0
    slot_end: float = 0.0
    answer_end: float = 0.0  # the last byte of the reply was written (0: not yet)
    streamed: bool = True
    image_bytes: int = 0


@dataclass
class Served:
    """What the server has done since it started or was last reset."""

    records: list[ChatRecord]
    connections: int  # TCP connections accepted
    ports: set[int]  # their client ports
    other_requests: int  # version, tags, show, load and unload chats


class EmulatedOllama(ThreadingHTTPServer):
    """The server: a slot semaphore and the records, shared by the handler threads."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, slots: int, service: float) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.slots = slots
        self.service = service
        self.semaphore = threading.BoundedSemaphore(slots)
        self.lock = threading.Lock()
        self.served = Served([], 0, set(), 0)
        self.cpu_at_reset = time.process_time()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client leaving is normal
            super().handle_error(request, client_address)

    def connection_opened(self, port: int) -> None:
        with self.lock:
            self.served.connections += 1
            self.served.ports.add(port)

    def stats(self, asking_port: int) -> dict[str, Any]:
        """The records; the connection asking for them is not counted."""
        with self.lock:
            served = self.served
            asking = asking_port in served.ports
            return {
                "slots": self.slots,
                "service_s": self.service,
                "connections": served.connections - asking,
                "distinct_ports": len(served.ports - {asking_port}),
                "other_requests": served.other_requests,
                "server_cpu_s": time.process_time() - self.cpu_at_reset,
                "chats": [asdict(record) for record in served.records if record.slot_end],
            }

    def reset(self) -> None:
        with self.lock:
            self.served = Served([], 0, set(), 0)
            self.cpu_at_reset = time.process_time()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatedOllama

    def setup(self) -> None:
        super().setup()
        # Go's net/http (Ollama's server) sets TCP_NODELAY on every connection; without it a
        # reply written in two pieces waits out the client's delayed ACK (~40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connection_opened(self.client_address[1])

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- routes ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        routes = {"/api/version": self._version, "/api/tags": self._tags, "/_stats": self._stats}
        self._route(routes)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        routes = {"/api/show": self._show, "/api/chat": self._chat, "/_reset": self._reset}
        self._route(routes)

    def _route(self, routes: dict[str, Any]) -> None:
        arrived = time.monotonic()
        body = self._read_body()
        handler = routes.get(self.path.split("?")[0])
        if handler is None:
            self._json(404, {"error": f"{self.command} {self.path} not found"})
            return
        try:
            handler(arrived, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _version(self, arrived: float, body: bytes) -> None:
        self._count_other()
        self._json(200, {"version": VERSION})

    def _tags(self, arrived: float, body: bytes) -> None:
        self._count_other()
        self._json(200, {"models": [_model_entry()]})

    def _show(self, arrived: float, body: bytes) -> None:
        self._count_other()
        request = json.loads(body or b"{}")
        name = request.get("model") or request.get("name") or ""
        if _full_name(name) != MODEL:
            self._json(404, {"error": f"model '{name}' not found"})
            return
        self._json(
            200,
            {
                "modelfile": f"FROM {MODEL}\n",
                "parameters": "temperature 0.0001",
                "template": "{{ .Prompt }}",
                "details": _details(),
                "model_info": {
                    "general.architecture": "qwen25vl",
                    "qwen25vl.vision.block_count": 32,
                },
                "capabilities": ["completion", "vision"],
                "modified_at": "2025-01-01T00:00:00Z",
            },
        )

    def _stats(self, arrived: float, body: bytes) -> None:
        self._json(200, self.server.stats(self.client_address[1]))

    def _reset(self, arrived: float, body: bytes) -> None:
        self.server.reset()
        self._json(200, {"reset": True})

    # -- chat -------------------------------------------------------------------------------
    def _chat(self, arrived: float, body: bytes) -> None:
        request = json.loads(body or b"{}")
        if _full_name(str(request.get("model") or "")) != MODEL:
            self._json(404, {"error": f"model '{request.get('model')}' not found"})
            return
        messages = request.get("messages") or []
        images = [image for message in messages for image in message.get("images") or []]
        if not images:  # a load or unload
            self._count_other()
            reason = "unload" if request.get("keep_alive") == 0 else "load"
            self._json(
                200,
                {
                    "model": request["model"],
                    "created_at": _now(),
                    "done": True,
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": reason,
                },
            )
            return
        record = ChatRecord(
            port=self.client_address[1],
            arrived=arrived,
            streamed=request.get("stream", True) is not False,
        )
        with self.server.lock:
            self.server.served.records.append(record)
        self.server.semaphore.acquire()
        try:
            record.slot_start = time.monotonic()
            sha = _decode(images, record)
            tokens = _answer_tokens(sha)
            prefill_until = record.slot_start + self.server.service * PREFILL_SHARE
            _sleep_until(prefill_until)
            token_s = self.server.service * (1 - PREFILL_SHARE) / len(tokens)
            if record.streamed:
                self._stream(request["model"], tokens, token_s, record)
            else:
                _sleep_until(time.monotonic() + token_s * len(tokens))
                record.slot_end = time.monotonic()
                self.server.semaphore.release()
                self._json(200, _final(request["model"], "".join(tokens), record))
        finally:
            if not record.slot_end:
                record.slot_end = time.monotonic()
                self.server.semaphore.release()
        record.answer_end = time.monotonic()

    def _stream(self, model: str, tokens: list[str], token_s: float, record: ChatRecord) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Date", self.date_time_string())
        self.end_headers()
        for token in tokens:
            _sleep_until(time.monotonic() + token_s)
            self._chunk(
                {
                    "model": model,
                    "created_at": _now(),
                    "done": False,
                    "message": {"role": "assistant", "content": token},
                }
            )
        # The generation is over: Ollama frees the slot before the handler ends the body.
        record.slot_end = time.monotonic()
        self.server.semaphore.release()
        self._chunk(_final(model, "", record))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- plumbing ---------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _chunk(self, value: dict[str, Any]) -> None:
        line = json.dumps(value, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.flush()

    def _json(self, status: int, value: Any) -> None:
        data = json.dumps(value, separators=(",", ":")).encode()
        reason = self.responses.get(status, ("",))[0]
        head = (
            f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\n"
            f"Date: {self.date_time_string()}\r\n\r\n"
        )
        # Headers and body in one write, as Go's buffered response writer sends a small reply.
        self.wfile.write(head.encode() + data)
        self.wfile.flush()

    def _count_other(self) -> None:
        with self.server.lock:
            self.server.served.other_requests += 1


def _decode(images: list[str], record: ChatRecord) -> str:
    """Decode the base64 and then the pixels, as the server's vision encoder must."""
    digest = hashlib.sha256()
    for value in images:
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            data = b""
        record.image_bytes += len(data)
        digest.update(data)
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.convert("RGB").load()
        except Exception:  # an undecodable image is answered all the same
            pass
    return digest.hexdigest()


def _answer_tokens(sha: str) -> list[str]:
    label = LABELS[int(sha[:8], 16) % len(LABELS)]
    words = ["The", " student", " in", " the", " image", " looks", f" {label}", "."]
    return words[:TOKENS_PER_ANSWER]


def _final(model: str, content: str, record: ChatRecord) -> dict[str, Any]:
    total = int((time.monotonic() - record.arrived) * 1e9)
    service = record.slot_end - record.slot_start if record.slot_end else 0.0
    return {
        "model": model,
        "created_at": _now(),
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": "stop",
        "total_duration": total,
        "load_duration": int((record.slot_start - record.arrived) * 1e9),
        "prompt_eval_count": 600,
        "prompt_eval_duration": int(service * PREFILL_SHARE * 1e9),
        "eval_count": TOKENS_PER_ANSWER,
        "eval_duration": int(service * (1 - PREFILL_SHARE) * 1e9),
    }


def _sleep_until(when: float) -> None:
    left = when - time.monotonic()
    if left > 0:
        time.sleep(left)


def _full_name(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "qwen25vl",
        "families": ["qwen25vl"],
        "parameter_size": "8.3B",
        "quantization_level": "Q4_K_M",
    }


def _model_entry() -> dict[str, Any]:
    return {
        "name": MODEL,
        "model": MODEL,
        "modified_at": "2025-01-01T00:00:00Z",
        "size": 5_969_245_856,
        "digest": DIGEST,
        "details": _details(),
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--slots", type=int, default=1, help="parallel slots (OLLAMA_NUM_PARALLEL)")
    parser.add_argument("--service", type=float, default=0.1, help="seconds per answer")
    arguments = parser.parse_args()
    server = EmulatedOllama(arguments.port, arguments.slots, arguments.service)
    print(server.url, flush=True)
    try:
        server.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
