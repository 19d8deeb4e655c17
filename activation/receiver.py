"""A reference webhook receiver (standard library only): verifies signatures and dedups by idempotency key.

It shows integrators what a correct receiver does, and it is the real HTTP server the tests and the
benchmark deliver to; it can be told to fail (status N for the next requests, answer slowly, or be down).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from activation.webhooks import KEY_HEADER, SIGNATURE_HEADER, verify_signature


@dataclass
class Received:
    """One request as the receiver saw it."""

    key: str | None
    signature_ok: bool
    status: int
    body: bytes
    at: float  # time.perf_counter() when the body was read
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Faults:
    fail: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # statuses for the next requests
    delay_s: list[float] = field(
        default_factory=list
    )  # answer the next requests this late (after processing)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class WebhookReceiver:
    """``ThreadingHTTPServer`` on 127.0.0.1 (port 0: any free port); ``url`` once started.

    Processed events (signature valid, key first seen) are in ``events``, in arrival order; ``first_seen``
    maps each event key to its arrival time; ``requests`` holds every request. A repeated key is answered 200
    without being processed again, as a receiver should.
    """

    def __init__(self, secret: bytes | str, port: int = 0) -> None:
        self.secret = secret
        self.port = port
        self.requests: list[Received] = []
        self.events: list[dict[str, Any]] = []
        self.first_seen: dict[str, float] = {}
        self.duplicates = 0
        self._faults = _Faults()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    # --- control ---
    def start(self) -> WebhookReceiver:
        """Listen (again, on the same port after ``stop``)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down entirely: the port refuses connections until ``start``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:  # kept-alive connections too, or a client would still reach us through them
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self._connections.clear()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def fail_next(self, n: int, status: int = 503, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` (without processing them)."""
        with self._lock:
            self._faults.fail.extend([(status, headers or {})] * n)

    def delay_next(self, n: int, seconds: float) -> None:
        """Process the next ``n`` requests but answer only after ``seconds`` (a sender may time out first)."""
        with self._lock:
            self._faults.delay_s.extend([seconds] * n)

    def keys(self) -> list[str]:
        """Processed event keys in arrival order (no duplicates by construction)."""
        with self._lock:
            return [e["idempotency_key"] for e in self.events]

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- one request ---
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        at = time.perf_counter()
        ok = verify_signature(self.secret, body, h.headers.get(SIGNATURE_HEADER))
        with self._lock:
            fail = self._faults.fail.pop(0) if self._faults.fail else None
            delay = self._faults.delay_s.pop(0) if (self._faults.delay_s and fail is None) else 0.0
            status, extra = fail if fail else ((200, {}) if ok else (401, {}))
            if status == 200:
                for e in json.loads(body).get("events", []):
                    k = e.get("idempotency_key")
                    if k in self.first_seen:
                        self.duplicates += 1
                    else:
                        self.first_seen[k] = at
                        self.events.append(e)
            self.requests.append(
                Received(h.headers.get(KEY_HEADER), ok, status, body, at, dict(h.headers.items()))
            )
        if delay:
            time.sleep(delay)
        payload = b'{"ok":true}' if status == 200 else b'{"ok":false}'
        try:
            h.send_response(status)
            for k, v in extra.items():
                h.send_header(k, v)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
        except OSError:  # the sender gave up (timeout) and closed the connection
            pass
