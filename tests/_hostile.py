"""A raw-socket HTTP server on 127.0.0.1 for tests that need a server to misbehave.

The offline server speaks the protocol faithfully (with scripted faults); this one sends
exactly the bytes a test scripts: a reply that never ends after ``[DONE]``, keep-alive
comments and nothing else, a gzip bomb, JSON nested 100,000 deep, a key echoed back.
Each accepted request is answered by ``handler(reply)``; ``reply`` reads nothing more and
writes raw bytes. ``stop()`` shuts every connection down, waking any handler that waits.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["HostileServer", "Reply"]


class Reply:
    """One request and the socket to answer it on."""

    def __init__(self, sock: socket.socket, head: bytes, body: bytes, stopping: threading.Event):
        self.sock = sock
        self.head = head
        self.body = body
        self.stopping = stopping
        self.path = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else ""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def start(self, status: int = 200, content_type: str = "text/event-stream", **headers: str):
        """Status line and headers of a chunked reply."""
        lines = [
            f"HTTP/1.1 {status} X",
            f"Content-Type: {content_type}",
            "Transfer-Encoding: chunked",
            "X-Request-ID: req_hostile",
        ]
        lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def chunk(self, data: bytes) -> None:
        if data:
            self.send(b"%x\r\n%s\r\n" % (len(data), data))

    def end(self) -> None:
        self.send(b"0\r\n\r\n")

    def events(self, *events: Any) -> None:
        """Each event (a JSON value or a ready string) as one ``data:`` event in one chunk."""
        for event in events:
            data = event if isinstance(event, str) else json.dumps(event)
            self.chunk(f"data: {data}\n\n".encode())

    def whole(
        self, status: int, body: bytes, content_type: str = "application/json", **headers: str
    ) -> None:
        """A complete reply with Content-Length."""
        lines = [
            f"HTTP/1.1 {status} X",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "X-Request-ID: req_hostile",
        ]
        lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def hold(self, seconds: float) -> None:
        """Keep the connection open and silent (until the server stops)."""
        self.stopping.wait(seconds)


class HostileServer:
    """``with HostileServer(handler) as server:`` then point a client at ``server.base_url``."""

    def __init__(self, handler: Callable[[Reply], None]) -> None:
        self.handler = handler
        self.requests: list[Reply] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def __enter__(self) -> HostileServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(10)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while not self._stopping.is_set():
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                body, buffer = buffer[:length], buffer[length:]
                reply = Reply(conn, head, body, self._stopping)
                self.requests.append(reply)
                self.handler(reply)
        except OSError:
            pass
        except BaseException as exc:  # a test's handler failed: the test reports it
            self.errors.append(exc)
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()
