"""The periodic thread: a bad interval is refused, a failing call is retried."""

from __future__ import annotations

import threading

import pytest

from contract.errors import ContractError
from features.periodic import Periodic


def test_a_bad_interval_is_refused_with_the_field() -> None:
    with pytest.raises(ContractError, match=r"^interval_s"):
        Periodic(lambda: None, 0.0, "x")


def test_a_failing_call_is_retried() -> None:
    calls = threading.Semaphore(0)

    def flaky() -> None:
        calls.release()
        raise RuntimeError("store down")

    p = Periodic(flaky, 0.01, "test-periodic").start()
    try:
        assert all(calls.acquire(timeout=5) for _ in range(3))
    finally:
        p.stop()
