"""`OfflineServer`: a local stand-in for Reka's API, on a loopback port, in threads.

No machine of this project reaches Reka, so tests, notebook runs and benchmarks talk to this
server. It speaks both wire shapes (OpenAI-compatible ``/v1/chat/completions`` and native
``/v1/chat``), lists models at ``/v1/models``, checks the key and the request like the real
API, answers with deterministic text that says no model ran, and can be scripted to fail in
the ways a network and a busy service fail (see `Fault`).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from ._faults import Fault
from ._handler import OfflineHandler
from ._limits import RateBucket, image_digest

__all__ = ["DEFAULT_MODELS", "TEST_API_KEY", "OfflineServer", "RecordedRequest"]

TEST_API_KEY = "reka-offline-test-key"
"""The key the offline server accepts unless told otherwise. It is not a secret."""

DEFAULT_MODELS: tuple[str, ...] = (
    "reka-core",
    "reka-flash",
    "reka-edge",
    "reka-flash-3",
    "reka-edge-2603",
    "reka-core-20240501",
)
"""Models the offline server knows unless told otherwise."""

_QUIET_ERRORS = (ConnectionError, TimeoutError)
_CHAT_PATHS = ("/v1/chat/completions", "/v1/chat")


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, with the key redacted (``Bearer [secure]``).

    ``status`` is what the server answered (0 when a fault closed the connection first);
    ``fault`` names the queued fault this request took (None for none or ``Fault.ok()``).
    ``received`` is when it arrived (``time.monotonic()`` in the server's process); for a
    chat request, ``prompt`` is the last user message's text and ``images`` the SHA-256 of
    each of its images (a remote image: its URL). ``body`` is None when bodies are not kept.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any = field(repr=False)
    auth_ok: bool
    status: int
    request_id: str
    fault: str | None
    received: float = 0.0
    prompt: str | None = None
    images: tuple[str, ...] = ()

    @property
    def is_chat(self) -> bool:
        """True for a request to one of the chat endpoints."""
        return self.path in _CHAT_PATHS


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: OfflineServer) -> None:
        self.owner = owner
        super().__init__(address, OfflineHandler)

    def server_bind(self) -> None:
        # Skip HTTPServer's reverse DNS lookup (socket.getfqdn), which can stall.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, _QUIET_ERRORS):
            self.owner._report_error(exc)


class OfflineServer:
    """A local HTTP/1.1 server that imitates Reka's API; use it as a context manager.

    ``token_delay`` (seconds between streamed events) and ``reply`` (text that replaces the
    generated answer) can be changed at any time. ``model_metadata=False`` makes
    ``/v1/models`` list ids only and accept any input, as local OpenAI-compatible servers do.
    ``queue()`` scripts faults for the following requests; ``requests`` is the log;
    ``reset()`` restores the state after construction.

    Account limits, also changeable at any time: ``latency`` (seconds before each chat answer
    starts), ``requests_per_minute`` (over it: 429 with ``Retry-After``; every chat answer
    carries ``x-ratelimit-*`` headers) and ``credits`` (chat answers the account can still
    pay for; at 0, 429 "insufficient balance"; None for no end). ``keep_bodies=False`` keeps
    the log small when many large images are sent (``prompt`` and ``images`` stay).

    ``model_list`` (entries sent as they are by ``/v1/models`` instead of the catalog's: a
    hostile or huge list) and ``models_latency`` (seconds before the list is sent) shape the
    model list; chat requests are still checked against ``models`` and the catalog.

    ``varied_choices=True`` (changeable at any time) makes each model pick the ``enum`` values
    (labels) of structured answers by the rule of ``_choices`` (`offline_choice`): models then
    disagree, deterministically, and are right as often as their accuracy says; without it
    every model takes the first value.
    """

    def __init__(
        self,
        *,
        api_key: str = TEST_API_KEY,
        token_delay: float = 0.0,
        models: Sequence[str] = DEFAULT_MODELS,
        max_images: int = 6,
        host: str = "127.0.0.1",
        port: int = 0,
        reply: str | None = None,
        model_metadata: bool = True,
        latency: float = 0.0,
        requests_per_minute: float | None = None,
        credits: int | None = None,
        keep_bodies: bool = True,
        model_list: Sequence[Any] | None = None,
        models_latency: float = 0.0,
        varied_choices: bool = False,
    ) -> None:
        self.api_key = api_key
        self.token_delay = token_delay
        self.reply = reply
        self.latency = latency
        self.credits = credits
        self.keep_bodies = keep_bodies
        self._bucket: RateBucket | None = None
        self.requests_per_minute = requests_per_minute
        self.models: tuple[str, ...] = tuple(models)
        self.max_images = max_images
        self.model_metadata = model_metadata
        self.model_list = None if model_list is None else list(model_list)
        self.models_latency = models_latency
        self.varied_choices = varied_choices
        self._initial = (token_delay, reply, latency, requests_per_minute, credits, keep_bodies)
        self._initial_choices = varied_choices
        self._initial_list = (self.model_list, models_latency)
        self._address = (host, port)
        self._lock = threading.Lock()
        self._idle = threading.Condition()  # requests being answered: see wait_idle
        self._handling = 0
        self._chats_arrived = 0
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._errors: list[BaseException] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> OfflineServer:
        """Bind the port and serve in a background thread; returns self. Idempotent."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(self._address, self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"reka-nb-offline-server:{httpd.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and release the port. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> OfflineServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between `start` and `stop`."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (valid after `start`)."""
        if self._httpd is None:
            raise RuntimeError("The offline server is not running: call start() first")
        return self._httpd.server_port

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>/v1`` (valid after `start`)."""
        host = self._address[0]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/v1"

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"<OfflineServer {where}>"

    # -- scripting and inspection ---------------------------------------------------------

    def queue(self, *faults: Fault) -> None:
        """Script the following requests: each one (any endpoint) takes the next fault."""
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"queue() takes Fault values, not {type(fault).__name__}")
        with self._lock:
            self._faults.extend(faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log: each request once answered (or cut off), in that order;
        ``received`` says when it arrived."""
        with self._lock:
            return list(self._requests)

    @property
    def requests_per_minute(self) -> float | None:
        """The account's limit (None: no limit); setting it starts a full bucket."""
        return None if self._bucket is None else self._bucket.rpm

    @requests_per_minute.setter
    def requests_per_minute(self, value: float | None) -> None:
        self._bucket = None if value is None else RateBucket(value)

    def chat_requests(self) -> list[RecordedRequest]:
        """The requests to the chat endpoints in the log (answered, in that order)."""
        return [r for r in self.requests if r.is_chat]

    @property
    def chats_arrived(self) -> int:
        """How many chat requests have arrived, the ones still being answered too (the log
        has a request only once it is answered)."""
        with self._lock:
            return self._chats_arrived

    def times_asked(self, *, prompt: str | None = None, image: bytes | None = None) -> int:
        """How many chat requests asked ``prompt`` (the last user text) about ``image`` (its
        bytes, among the question's images); either may be left out."""
        digest = None if image is None else image_digest(image)
        return sum(
            1
            for r in self.chat_requests()
            if (prompt is None or r.prompt == prompt) and (digest is None or digest in r.images)
        )

    def reset(self) -> None:
        """Forget requests and queued faults; restore the delays, reply, account limits,
        ``keep_bodies``, the model list and ``varied_choices``."""
        with self._lock:
            self._requests.clear()
            self._chats_arrived = 0
            self._faults.clear()
            delay, reply, latency, rpm, credits, keep = self._initial
            self.token_delay, self.reply, self.latency = delay, reply, latency
            self.credits, self.keep_bodies = credits, keep
            self.requests_per_minute = rpm
            model_list, self.models_latency = self._initial_list
            self.model_list = None if model_list is None else list(model_list)
            self.varied_choices = self._initial_choices

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being answered (those a killed client left in flight are
        then answered and recorded); False if ``timeout`` seconds pass first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._handling == 0, timeout)

    @contextlib.contextmanager
    def _answering(self) -> Iterator[None]:
        """Count a request while a handler answers it (for wait_idle)."""
        with self._idle:
            self._handling += 1
        try:
            yield
        finally:
            with self._idle:
                self._handling -= 1
                self._idle.notify_all()

    def check_errors(self) -> None:
        """Re-raise the first exception a handler raised since the last check, then forget them.

        A handler bug also answers 500, but the test that caused it should fail loudly.
        """
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]

    # -- called from handler threads ------------------------------------------------------

    def _admit(self) -> tuple[str | None, dict[str, str]]:
        """For a chat request: None to answer it, or why not ("rate" / "credits"), and the
        rate-limit headers to send either way."""
        bucket = self._bucket
        allowed, headers = (True, {}) if bucket is None else bucket.take()
        if not allowed:
            return "rate", headers
        with self._lock:
            if self.credits is not None:
                if self.credits <= 0:
                    return "credits", headers
                self.credits -= 1
        return None, headers

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, **fields: Any) -> None:
        entry = RecordedRequest(**fields)
        with self._lock:
            self._requests.append(entry)

    def _arrived(self, path: str) -> None:
        if path in _CHAT_PATHS:
            with self._lock:
                self._chats_arrived += 1

    def _report_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)
