"""The HTTP handler of the offline server: routing, auth, faults, and writing answers."""

from __future__ import annotations

import contextlib
import hmac
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

from ._answer import Completion, complete
from ._catalog import model_entry
from ._choices import offline_choice
from ._events import (
    MALFORMED_NATIVE,
    MALFORMED_OPENAI,
    dumps,
    native_completion,
    native_events,
    openai_completion,
    openai_events,
)
from ._faults import Fault, error_envelope
from ._limits import INSUFFICIENT_BALANCE, question_of
from ._request import ChatRequest, Rejection
from ._structured import structured_reply, structured_request
from ._validate import InvalidJSON, parse_body, validate_chat

__all__ = ["MAX_BODY_BYTES", "MODELS_CREATED", "OfflineHandler"]

MAX_BODY_BYTES = 25 * 1024 * 1024
"""Bodies above this many bytes are answered with 413."""

MODELS_CREATED = 1714521600
"""The fixed ``created`` time of every model in ``GET /v1/models`` (2024-05-01)."""

_ROUTES = {
    "/v1/chat/completions": ("POST", "openai"),
    "/v1/chat": ("POST", "native"),
    "/v1/models": ("GET", "models"),
}
_STREAM_FAULTS = ("break_after", "stall", "malformed", "end_without_finish")
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)
_DRAIN_LIMIT = 1024 * 1024 * 1024


def _redact(name: str, value: str) -> str:
    if name == "authorization":
        scheme = value.split(" ", 1)[0] if " " in value.strip() else ""
        return f"{scheme} [secure]" if scheme else "[secure]"
    if name == "x-api-key":
        return "[secure]"
    return value


class OfflineHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests (HTTP/1.1 keep-alive) for an `OfflineServer`."""

    protocol_version = "HTTP/1.1"
    server_version = "reka-nb-offline/1"
    sys_version = ""
    disable_nagle_algorithm = True

    request_id = ""
    _started = False
    _chunked = False
    _first_byte_delay = 0.0
    _record_args: dict[str, Any] | None = None
    _echo: tuple[str, str] | None = None  # (header, key) of an echo_key fault
    _limit_headers: dict[str, str] = {}  # noqa: RUF012 - replaced per request, never mutated

    @property
    def owner(self) -> Any:
        """The ``OfflineServer`` this connection belongs to (which imports this module)."""
        return self.server.owner  # type: ignore[attr-defined]

    # -- plumbing -------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.owner._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests and notebooks must not see a line per request."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found while parsing the request line, as JSON with a request id."""
        self.request_id = self.request_id or "req_" + uuid.uuid4().hex
        self.close_connection = True
        self._send_json(code, error_envelope(code, message or "Bad request"))

    def do_GET(self) -> None:
        with self.owner._answering():
            self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # -- request --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self.request_id = "req_" + uuid.uuid4().hex
        self._started = False
        self._chunked = False
        self._first_byte_delay = 0.0
        self._limit_headers = {}
        received = time.monotonic()
        path = urlsplit(self.path).path
        self.owner._arrived(path)
        fault = self.owner._next_fault()
        self._echo = None
        if fault is not None and fault.kind == "echo_key":
            self._echo = (fault.headers[0][0], self._given_key())
        headers = {k.lower(): _redact(k.lower(), v) for k, v in self.headers.items()}
        auth_ok = self._auth_ok()
        self._record_args = {
            "method": self.command,
            "path": path,
            "headers": headers,
            "body": None,
            "auth_ok": auth_ok,
            "fault": None if fault is None or fault.kind == "ok" else fault.kind,
            "received": received,
        }
        try:
            try:
                raw = self._read_body()
            except ValueError:
                self.close_connection = True
                self._send_json(400, error_envelope(400, "Malformed request body framing"))
                return
            body = parse_body(raw) if raw else InvalidJSON("empty body")
            if not isinstance(body, InvalidJSON):
                self._record_args["body"] = body if self.owner.keep_bodies else None
                if path in _ROUTES and _ROUTES[path][1] != "models":
                    prompt, images = question_of(body)
                    self._record_args.update(prompt=prompt, images=images)
            self._respond(path.rstrip("/") or "/", raw is None, body, fault, auth_ok)
        except _DISCONNECTS:
            self.close_connection = True
        except Exception as exc:
            self.owner._report_error(exc)
            self.close_connection = True
            if not self._started:
                with contextlib.suppress(OSError):
                    message = f"The offline server failed: {type(exc).__name__}"
                    self._send_json(500, error_envelope(500, message))

    def _given_key(self) -> str:
        """The key the request carried (bearer token or X-Api-Key), for an echo_key fault."""
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            return token.strip()
        return self.headers.get("X-Api-Key", "").strip()

    def _auth_ok(self) -> bool:
        key = self.owner.api_key.encode()
        bearer = self.headers.get("Authorization", "")
        scheme, _, token = bearer.strip().partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key):
            return True
        given = self.headers.get("X-Api-Key")
        return given is not None and hmac.compare_digest(given.strip().encode(), key)

    def _read_body(self) -> bytes | None:
        """The request body, or None when it exceeded `MAX_BODY_BYTES` (it is drained)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                data = self.rfile.read(size)
                self.rfile.readline()
                if total <= MAX_BODY_BYTES:
                    parts.append(data)
            return b"".join(parts) if total <= MAX_BODY_BYTES else None
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length <= MAX_BODY_BYTES:
            return self.rfile.read(length) if length else b""
        if length > _DRAIN_LIMIT:
            self.close_connection = True
            return None
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        return None

    def _respond(
        self, path: str, too_large: bool, body: Any, fault: Fault | None, auth_ok: bool
    ) -> None:
        """Decide the answer: fault, routing, size, auth, then the endpoint itself."""
        owner = self.owner
        if fault is not None and fault.kind == "status":
            extra = dict(fault.headers)
            self._send_bytes(fault.code, fault.body, fault.content_type, extra)
            return
        if fault is not None and fault.kind == "echo_key" and fault.code:
            self._send_json(fault.code, error_envelope(fault.code, "The request failed"))
            return
        if fault is not None and fault.kind == "reset":
            self._record(0)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.kind == "slow_first_byte":
            self._first_byte_delay = fault.seconds
        route = _ROUTES.get(path)
        if route is None:
            self._send_json(404, error_envelope(404, f"Not found: {path}"))
            return
        method, endpoint = route
        if self.command != method:
            message = f"Method {self.command} is not allowed on {path}; use {method}"
            self._send_json(405, error_envelope(405, message), {"Allow": method})
            return
        if too_large:
            limit = MAX_BODY_BYTES // (1024 * 1024)
            message = f"The request body is too large: the limit is {limit} MB"
            self._send_json(413, error_envelope(413, message))
            return
        if not auth_ok:
            self._send_json(401, error_envelope(401, "Missing or invalid API key"))
            return
        if endpoint == "models":
            self._models(fault)
            return
        native = endpoint == "native"
        request = validate_chat(
            body,
            native=native,
            models=owner.models,
            max_images=owner.max_images,
            modalities=owner.model_metadata,
        )
        if isinstance(request, Rejection):
            self._send_json(request.status, request.body)
            return
        asked = structured_request(body, request.model, owner.model_metadata)
        if isinstance(asked, Rejection):
            self._send_json(asked.status, asked.body)
            return
        refused, self._limit_headers = owner._admit()
        if refused is not None:
            message = "Too many requests" if refused == "rate" else INSUFFICIENT_BALANCE
            self._send_json(429, error_envelope(429, message))
            return
        owner._sleep(owner.latency)
        reply = owner.reply
        if reply is None and asked is not None:
            choose = None
            if owner.varied_choices:
                prompt, images = question_of(body)
                model = request.model

                def choose(options: Any) -> Any:
                    return offline_choice(model, options, images, prompt)

            reply = structured_reply(asked, request, fault, choose)
        self._answer(request, complete(request, reply), native, fault)

    def _models(self, fault: Fault | None) -> None:
        """The model list: the catalog's entries, or ``owner.model_list`` as given; after
        ``owner.models_latency`` seconds, and held open first by a ``trickle`` fault."""
        owner = self.owner
        owner._sleep(owner.models_latency)
        data = owner.model_list
        if data is None:
            data = [
                model_entry(m, MODELS_CREATED, metadata=owner.model_metadata) for m in owner.models
            ]
        body = dumps({"object": "list", "data": data}).encode()
        if fault is None or fault.kind != "trickle":
            self._send_bytes(200, body, "application/json")
            return
        self._chunked = self.request_version == "HTTP/1.1"
        if not self._chunked:
            self.close_connection = True
        self._start(
            200, "application/json", {"Transfer-Encoding": "chunked"} if self._chunked else {}
        )
        ends = time.monotonic() + fault.seconds
        while time.monotonic() < ends and not owner._stopping.is_set():
            self._write(b" ")
            self.wfile.flush()
            owner._sleep(min(fault.every, max(0.0, ends - time.monotonic())))
        self._write(body)
        self._end_body()

    # -- answers --------------------------------------------------------------------------

    def _answer(
        self, request: ChatRequest, completion: Completion, native: bool, fault: Fault | None
    ) -> None:
        stream_fault = fault if fault is not None and fault.kind in _STREAM_FAULTS else None
        created = int(time.time())
        response_id = str(uuid.uuid4()) if native else "chatcmpl-" + uuid.uuid4().hex
        if not request.stream:
            self._answer_whole(request, completion, native, stream_fault, response_id, created)
            return
        finished = stream_fault is None or stream_fault.kind != "end_without_finish"
        events: Iterator[str]
        if native:
            events = native_events(
                response_id=response_id,
                model=request.model,
                completion=completion,
                finished=finished,
            )
        else:
            events = openai_events(
                response_id=response_id,
                created=created,
                model=request.model,
                completion=completion,
                finished=finished,
            )
        if native:
            self._stream(events, stream_fault, MALFORMED_NATIVE, uncounted=0)
        else:
            self._stream(events, stream_fault, MALFORMED_OPENAI, uncounted=1)

    def _answer_whole(
        self,
        request: ChatRequest,
        completion: Completion,
        native: bool,
        fault: Fault | None,
        response_id: str,
        created: int,
    ) -> None:
        """A non-streaming answer; stream faults map onto the single JSON body."""
        if fault is not None and fault.kind == "end_without_finish":
            tokens = completion.tokens[: fault.events]
            completion = Completion(tokens, None, completion.prompt_tokens)
        payload = (
            native_completion(response_id=response_id, model=request.model, completion=completion)
            if native
            else openai_completion(
                response_id=response_id, created=created, model=request.model, completion=completion
            )
        )
        data = dumps(payload).encode()
        if fault is None or fault.kind == "end_without_finish":
            self._send_bytes(200, data, "application/json")
        elif fault.kind == "malformed":
            bad = (MALFORMED_NATIVE if native else MALFORMED_OPENAI).encode()
            self._send_bytes(200, bad, "application/json")
        elif fault.kind == "stall":
            self._start(200, "application/json", {"Content-Length": str(len(data))})
            self.owner._sleep(fault.seconds)
            self.wfile.write(data)
        else:  # break_after: half the body, then the connection drops
            self._start(200, "application/json", {"Content-Length": str(len(data))})
            self.wfile.write(data[: len(data) // 2])
            self._drop()

    def _stream(
        self, events: Iterable[str], fault: Fault | None, malformed: str, uncounted: int
    ) -> None:
        """Write events as server-sent events, applying a stream fault at its position.

        The first ``uncounted`` events (OpenAI's opening role chunk) always go out and do not
        count towards the fault's position, so ``n`` means n words on both endpoints.
        """
        self._chunked = self.request_version == "HTTP/1.1"
        headers = {"Cache-Control": "no-cache"}
        if self._chunked:
            headers["Transfer-Encoding"] = "chunked"
        else:
            self.close_connection = True
        self._start(200, "text/event-stream", headers)
        at = fault.events + uncounted if fault is not None else -1
        if fault is not None and fault.kind == "end_without_finish":
            events = islice(events, at)
        sent = 0
        for data in events:
            if sent == at and self._apply(fault, malformed):
                return
            if sent and self.owner.token_delay > 0:
                self.owner._sleep(self.owner.token_delay)
            self._write(f"data: {data}\n\n".encode())
            sent += 1
        if sent <= at and self._apply(fault, malformed):
            return
        self._end_body()

    def _apply(self, fault: Fault | None, malformed: str) -> bool:
        """Apply a stream fault at its position; True when the body is over."""
        assert fault is not None
        if fault.kind == "stall":
            self.owner._sleep(fault.seconds)
            return False
        if fault.kind == "malformed":
            self._write(f"data: {malformed}\n\n".encode())
            self._end_body()
            return True
        if fault.kind == "break_after":
            self._drop()
            return True
        return False  # end_without_finish: the events were already cut short

    # -- writing --------------------------------------------------------------------------

    def _record(self, status: int) -> None:
        if self._record_args is not None:
            self.owner._record(status=status, request_id=self.request_id, **self._record_args)
            self._record_args = None

    def _start(
        self, status: int, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        """Record the request, wait out a slow-first-byte fault, then send status and headers."""
        self._record(status)
        if self._first_byte_delay:
            self.owner._sleep(self._first_byte_delay)
            self._first_byte_delay = 0.0
        self._started = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        extra = {**self._limit_headers, **(headers or {})}
        if self._echo is None:
            self.send_header("X-Request-ID", self.request_id)
        else:  # the echo goes out, the record keeps the server's own id
            name, key = self._echo
            echoed = name.lower() == "x-request-id"
            self.send_header("X-Request-ID", f"req_{key}" if echoed else self.request_id)
            if not echoed:
                extra[name] = key
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        no_body = status in (204, 304)
        extra = dict(headers or {})
        if not no_body:
            extra["Content-Length"] = str(len(data))
        self._start(status, content_type, extra)
        if self.command != "HEAD" and not no_body:
            self.wfile.write(data)

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send_bytes(status, dumps(payload).encode(), "application/json", headers)

    def _write(self, data: bytes) -> None:
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.wfile.write(data)

    def _end_body(self) -> None:
        if self._chunked:
            self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Close the connection at once, mid-body: the client sees an incomplete read."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
