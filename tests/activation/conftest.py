"""Fixtures for activation: a real local webhook receiver, destinations pointing at it, an outbox, consent."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from activation_testdata import SECRET

from activation.config import Destination
from activation.outbox import Outbox
from activation.receiver import WebhookReceiver
from activation.webhooks import Deliverer


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as r:
        yield r


@pytest.fixture
def destination(receiver: WebhookReceiver) -> Callable[..., Destination]:
    """A destination at the receiver with small, test-sized timeouts and backoff (overridable)."""

    def make(**kw: Any) -> Destination:
        base: dict[str, Any] = {
            "name": "crm",
            "url": receiver.url,
            "secret": SECRET,
            "segments": "*",
            "timeout_s": 1.0,
            "max_attempts": 4,
            "backoff_base_s": 0.02,
            "backoff_max_s": 0.1,
            "batch_size": 1,
        }
        return Destination(**(base | kw))

    return make


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    ob = Outbox.for_workspace(tmp_path / "ws")
    yield ob
    ob.close()


class Consent:
    """A consent check the tests control: everyone consents except the customers in ``refused``."""

    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.calls: list[tuple[tuple[str, ...], str]] = []

    def __call__(self, customer_ids: Sequence[str], purpose: Any) -> set[str]:
        self.calls.append((tuple(customer_ids), str(purpose)))
        return {c for c in customer_ids if c not in self.refused}


@pytest.fixture
def consent() -> Consent:
    return Consent()


@pytest.fixture
def deliverer_for(outbox: Outbox, consent: Consent) -> Iterator[Callable[..., Deliverer]]:
    made: list[Deliverer] = []

    def make(*destinations: Destination, **kw: Any) -> Deliverer:
        d = Deliverer(outbox, destinations, consent, poll_s=0.05, seed=1, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()
