"""The periodic thread's pacing: a long call stretches the wait so calls keep to their share of the time."""

from __future__ import annotations

import threading

import pytest

from contract.errors import ContractError
from features.periodic import Periodic, next_wait


def test_a_short_call_waits_the_interval_and_a_long_one_keeps_its_duty() -> None:
    assert next_wait(1.0, 0.05, 0.1) == 1.0
    assert next_wait(1.0, 0.3, 0.1) == pytest.approx(2.7)  # 0.3 s of every 3 s
    assert next_wait(1.0, 5.0, 1.0) == 1.0  # no duty bound: back to the interval


def test_bad_pacing_is_refused_with_the_field() -> None:
    with pytest.raises(ContractError, match=r"^max_duty"):
        Periodic(lambda: None, 1.0, "x", max_duty=0.0)
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
