"""A daemon thread that calls a function every interval until stopped (the live sweeper, the write-behind)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from contract.errors import ContractError

log = logging.getLogger(__name__)


def next_wait(interval_s: float, took_s: float, max_duty: float) -> float:
    """Seconds to wait after a call that took `took_s`: the interval, or longer so that calls take at most
    `max_duty` of the time."""
    return max(interval_s, took_s * (1 / max_duty - 1))


class Periodic:
    """Calls `fn()` every `interval_s` seconds on a daemon thread named `name`; a failing call is logged and the
    next one retries (the callers keep their state exact without it).

    `max_duty` (0-1] stretches the wait after a long call so calls take at most that share of the time: a
    call whose cost grows with what piled up (a bulk write) then runs less often and does more each time,
    instead of taking the interpreter from the live path."""

    def __init__(
        self, fn: Callable[[], object], interval_s: float, name: str, *, max_duty: float = 1.0
    ) -> None:
        if interval_s <= 0:
            raise ContractError("interval_s", "must be positive", interval_s)
        if not 0 < max_duty <= 1:
            raise ContractError("max_duty", "must be in (0, 1]", max_duty)
        self.fn = fn
        self.interval_s = interval_s
        self.max_duty = max_duty
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        wait = self.interval_s
        while not self._stop.wait(wait):
            started = time.monotonic()
            try:
                self.fn()
            except Exception:
                log.exception("%s failed; retrying at the next call", self._thread.name)
            wait = next_wait(self.interval_s, time.monotonic() - started, self.max_duty)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop and wait for a running call up to `timeout` seconds."""
        self._stop.set()
        self._thread.join(timeout)
