"""A daemon thread that calls a function every interval until stopped (the live sweeper, the write-behind)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from contract.errors import ContractError

log = logging.getLogger(__name__)


class Periodic:
    """Calls `fn()` every `interval_s` seconds on a daemon thread named `name`; a failing call is logged and the
    next one retries (the callers keep their state exact without it)."""

    def __init__(self, fn: Callable[[], object], interval_s: float, name: str) -> None:
        if interval_s <= 0:
            raise ContractError("interval_s", "must be positive", interval_s)
        self.fn = fn
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.fn()
            except Exception:
                log.exception("%s failed; retrying at the next call", self._thread.name)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop and wait for a running call up to `timeout` seconds."""
        self._stop.set()
        self._thread.join(timeout)
