"""Signed webhook delivery from the outbox: HMAC-SHA256 signatures, retries with backoff, dead letters.

Each POST carries a JSON body ``{"destination", "sent_at", "events": [...]}`` (every event with its own
``idempotency_key``) and the headers

- ``X-CXI-Signature: sha256=<hex HMAC-SHA256 of the raw body with the destination secret>``
- ``X-CXI-Timestamp: <unix seconds>`` (also inside the signed body as ``sent_at``)
- ``Idempotency-Key``: the event's key (one event), else sha256 of the batch's keys.

Delivery is at least once: a receiver dedups by the events' idempotency keys. 2xx → delivered; 408, 429,
5xx, timeouts and connection errors → retried with exponential backoff and jitter (``Retry-After`` honoured
on 429/503) until ``max_attempts``, then dead; any other status → dead at once (a permanent refusal).
A customer without the destination's consent purpose is never sent: the row becomes ``suppressed``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx

from contract.errors import NotFoundError

if TYPE_CHECKING:
    from activation.config import Destination
    from activation.outbox import Delivery, Outbox
    from contract.schemas import ConsentPurpose
    from contract.settings import Settings

log = logging.getLogger(__name__)

#: ``consent(customer_ids, purpose)`` → the ids among them that hold that consent purpose now.
ConsentCheck = Callable[[Sequence[str], "ConsentPurpose"], Collection[str]]
SIGNATURE_HEADER = "X-CXI-Signature"
TIMESTAMP_HEADER = "X-CXI-Timestamp"
KEY_HEADER = "Idempotency-Key"
#: How long a claimed batch stays leased beyond its request timeout before another sender may take it.
LEASE_MARGIN_S = 30.0
MAX_RETRY_AFTER_S = 86_400.0


def sign(secret: bytes | str, body: bytes) -> str:
    """The ``X-CXI-Signature`` value for a raw body."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes | str, body: bytes, header: str | None) -> bool:
    """For receivers: whether ``header`` (``X-CXI-Signature``) signs ``body`` (the raw bytes, before parsing)."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d] with d = min(max, base·2^(attempt-1))."""
    d = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return d / 2 + rng.uniform(0, d / 2)


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) in seconds from now; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        secs = when.timestamp() - (time.time() if now is None else now)
    return min(max(0.0, secs), MAX_RETRY_AFTER_S)


def build_request(
    destination: Destination,
    events: Sequence[dict[str, Any]],
    keys: Sequence[str],
    secret: bytes,
    kind: str = "membership",
) -> tuple[bytes, dict[str, str]]:
    """The raw JSON body and headers of one POST (``kind``: membership events, or a ping)."""
    now = time.time()
    body = json.dumps(
        {
            "type": kind,
            "destination": destination.name,
            "sent_at": datetime.fromtimestamp(now, UTC).isoformat(),
            "events": [{**e, "idempotency_key": k} for e, k in zip(events, keys, strict=True)],
        },
        default=str,
        separators=(",", ":"),
    ).encode()
    joined = "\n".join(keys) if keys else body.decode()
    batch_key = keys[0] if len(keys) == 1 else hashlib.sha256(joined.encode()).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "cxi-activation",
        SIGNATURE_HEADER: sign(secret, body),
        TIMESTAMP_HEADER: str(int(now)),
        KEY_HEADER: batch_key,
    }
    return body, headers


@dataclass(frozen=True)
class Outcome:
    """How one POST went: ``delivered``, ``retry`` or ``dead``; the status (None: no response) and why."""

    result: str
    status: int | None
    error: str | None = None
    retry_after: float | None = None


def classify(response: httpx.Response | None, error: Exception | None) -> Outcome:
    """Map a response (or a transport error) to delivered / retry / dead."""
    if response is None:
        return Outcome("retry", None, f"{type(error).__name__}: {error}"[:500])
    s = response.status_code
    if 200 <= s < 300:
        return Outcome("delivered", s)
    reason = f"HTTP {s}: {response.text[:200]}"
    if s in (408, 429) or s >= 500:
        ra = retry_after_s(response.headers.get("Retry-After")) if s in (429, 503) else None
        return Outcome("retry", s, reason, ra)
    return Outcome("dead", s, reason)


@dataclass
class Stats:
    """What a deliverer did since it started (counts of deliveries, and requests)."""

    requests: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    suppressed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)


class Deliverer:
    """Sends due outbox deliveries to their destinations, in a background thread (``start``/``stop``) or
    synchronously (``run_once``, ``flush``, ``drain_dead``).

    ``consent`` is required: a batch is filtered through it right before sending, so a consent withdrawn
    after the event was enqueued is honoured too. ``transport`` lets tests swap httpx's transport.
    """

    def __init__(
        self,
        outbox: Outbox,
        destinations: Sequence[Destination],
        consent: ConsentCheck,
        *,
        concurrency: int = 4,
        poll_s: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        seed: int | None = None,
    ) -> None:
        self.outbox = outbox
        self.destinations = {d.name: d for d in destinations if d.enabled}  # disabled: held, not sent
        self.consent = consent
        self.concurrency = concurrency
        self.poll_s = poll_s
        self.stats = Stats()
        self._transport = transport
        self._rng = random.Random(seed)
        self._secrets = {d.name: d.resolved_secret() for d in self.destinations.values()}
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: Settings, consent: ConsentCheck, **kwargs: Any) -> Deliverer:
        """The workspace outbox and the configured destinations, with Settings' concurrency."""
        from activation.config import destinations_from_settings
        from activation.outbox import Outbox

        kwargs.setdefault("concurrency", settings.delivery_concurrency)
        return cls(
            Outbox.for_workspace(settings.workspace), destinations_from_settings(settings), consent, **kwargs
        )

    # --- lifecycle ---
    def start(self) -> Deliverer:
        """Deliver in a background thread until ``stop``."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="cxi-webhook")
        self._thread = threading.Thread(target=self._loop, name="cxi-deliverer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the background thread; batches in flight finish (or stay leased and are retried later)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()

    def __enter__(self) -> Deliverer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def notify(self) -> None:
        """Wake the background thread now (call after an enqueue; otherwise it polls every ``poll_s``)."""
        self._wake.set()

    # --- the loop ---
    def _due(self, now: float) -> tuple[list[str], float | None]:
        """Configured, idle destinations due now, and when the next one will be."""
        heads = self.outbox.heads()
        with self._lock:
            mine = {n: t for n, t in heads.items() if n in self.destinations and n not in self._busy}
        due = [n for n, t in mine.items() if t <= now]
        later = [t for n, t in mine.items() if t > now]
        return due, (min(later) if later else None)

    def _loop(self) -> None:
        assert self._pool is not None
        while not self._stop.is_set():
            self._wake.clear()
            try:
                due, nxt = self._due(time.time())
            except Exception:  # a locked or broken database must not kill the thread
                log.exception("outbox read failed")
                due, nxt = [], None
            for name in due:
                with self._lock:
                    self._busy.add(name)
                fut = self._pool.submit(self._deliver_batch, name)
                fut.add_done_callback(lambda _f, n=name: self._done(n))
            wait = self.poll_s if nxt is None else min(self.poll_s, max(0.0, nxt - time.time()))
            self._wake.wait(wait)

    def _done(self, name: str) -> None:
        with self._lock:
            self._busy.discard(name)
        self._wake.set()

    # --- one batch ---
    def _client(self, d: Destination) -> httpx.Client:
        with self._lock:
            c = self._clients.get(d.name)
            if c is None:
                c = httpx.Client(timeout=d.timeout_s, transport=self._transport, follow_redirects=False)
                self._clients[d.name] = c
            return c

    def _deliver_batch(self, name: str) -> int:
        """Claim, consent-filter, send and record one batch of a destination; returns deliveries settled."""
        try:
            return self._send_batch(name)
        except Exception:  # leased rows come back after the lease; the loop keeps going
            log.exception("delivery to %s failed", name)
            return 0

    def _send_batch(self, name: str) -> int:
        d = self.destinations[name]
        claimed = self.outbox.claim(name, d.batch_size, d.timeout_s + LEASE_MARGIN_S)
        if not claimed:
            return 0
        try:
            batch = self._consent_filter(d, claimed)
        except Exception as exc:  # no consent answer: send nothing, try again later
            log.exception("consent check failed for %s", name)
            self._retry_or_die(d, claimed, Outcome("retry", None, f"consent check failed: {exc}"[:500]))
            return 0
        if not batch:
            return len(claimed)
        body, headers = build_request(
            d, [b.payload for b in batch], [b.key for b in batch], self._secrets[name]
        )
        response, error = None, None
        try:
            response = self._client(d).post(d.url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # timeouts, refused connections, protocol errors: all retryable
            error = exc
        self.stats.add(requests=1)
        out = classify(response, error)
        ids = [b.id for b in batch]
        if out.result == "delivered":
            self.outbox.mark_delivered(ids)
            self.stats.add(delivered=len(ids))
        elif out.result == "dead":
            self.outbox.mark_dead(ids, out.error or "refused")
            self.stats.add(dead=len(ids))
        else:
            self._retry_or_die(d, batch, out)
        return len(claimed)

    def _retry_or_die(self, d: Destination, batch: Sequence[Delivery], out: Outcome) -> None:
        """Schedule the next attempt with backoff (or Retry-After), or dead-letter after max_attempts."""
        ids = [b.id for b in batch]
        attempts = max(b.attempts for b in batch)
        if attempts >= d.max_attempts:
            self.outbox.mark_dead(ids, f"gave up after {attempts} attempts: {out.error}")
            self.stats.add(dead=len(ids))
            return
        delay = out.retry_after
        if delay is None:
            with self._lock:
                delay = backoff_delay(attempts, d.backoff_base_s, d.backoff_max_s, self._rng)
        self.outbox.mark_retry(ids, time.time() + delay, out.error or "retry")
        self.stats.add(retried=len(ids))

    def _consent_filter(self, d: Destination, batch: list[Delivery]) -> list[Delivery]:
        """Keep the deliveries whose customer holds the destination's purpose; suppress the others."""
        purpose = d.consent_purpose
        allowed = set(self.consent(sorted({b.customer_id for b in batch}), purpose))
        removal = d.exits_without_consent
        keep = [b for b in batch if b.customer_id in allowed or (removal and b.kind == "exit")]
        kept = {b.id for b in keep}
        refused = [b.id for b in batch if b.id not in kept]
        if refused:
            self.outbox.mark_suppressed(refused, f"no {purpose.value} consent")
            self.stats.add(suppressed=len(refused))
        return keep

    # --- synchronous use (CLI, tests) ---
    def run_once(self) -> int:
        """One batch for every configured destination due now, in parallel; returns deliveries settled."""
        due, _ = self._due(time.time())
        if not due:
            return 0
        with ThreadPoolExecutor(min(self.concurrency, len(due))) as pool:
            return sum(pool.map(self._deliver_batch, due))

    def pending(self, destinations: Collection[str] | None = None) -> int:
        """Pending deliveries for configured destinations (or those named)."""
        names = set(self.destinations) if destinations is None else set(destinations)
        return sum(n for d, n in self.outbox.pending_counts().items() if d in names)

    def flush(self, timeout_s: float = 60.0, destinations: Collection[str] | None = None) -> bool:
        """Deliver until nothing is pending (each delivery ends delivered, dead or suppressed) or the time is up.

        Waits through backoff delays. With the background thread running it only waits for it.
        Returns whether everything settled.
        """
        end = time.monotonic() + timeout_s
        while self.pending(destinations):
            if time.monotonic() >= end:
                return False
            if self.running:
                self.notify()
                time.sleep(0.01)
                continue
            if not self.run_once():
                _, nxt = self._due(time.time())
                pause = 0.01 if nxt is None else max(0.0, nxt - time.time())
                time.sleep(min(pause, max(0.0, end - time.monotonic()), self.poll_s))
        return True

    def drain_dead(self, destination: str | None = None, timeout_s: float = 60.0) -> int:
        """Put dead letters (of one destination, or all) back to pending and deliver them; returns how many."""
        if destination is not None and destination not in self.destinations:
            raise NotFoundError(f"destination {destination!r} is not configured (or is disabled)")
        n = self.outbox.revive_dead(destination)
        if n:
            self.flush(timeout_s, None if destination is None else [destination])
        return n


def ping(destination: Destination, *, transport: httpx.BaseTransport | None = None) -> tuple[Outcome, float]:
    """Send a signed ping (no events) to a destination; returns its outcome and the round trip in ms."""
    body, headers = build_request(destination, [], [], destination.resolved_secret(), kind="ping")
    t0 = time.perf_counter()
    response, error = None, None
    with httpx.Client(timeout=destination.timeout_s, transport=transport) as client:
        try:
            response = client.post(destination.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            error = exc
    return classify(response, error), (time.perf_counter() - t0) * 1000
