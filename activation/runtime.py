"""The one object a process holds for push activation: configured destinations, the outbox and a deliverer.

```python
activation = Activation.from_settings(settings, consent=consent_check)
with activation:                          # starts / stops the background deliverer
    activation.enqueue(membership_events)  # cheap: rows into SQLite, then a wake-up; never network I/O
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from activation.outbox import Outbox
from activation.webhooks import ConsentCheck, Deliverer

if TYPE_CHECKING:
    import httpx

    from activation.config import Destination
    from contract.settings import Settings


class Activation:
    """Destinations + outbox + deliverer. ``enqueue`` is safe to call from the ingestion path."""

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
        self.destinations = list(destinations)
        self.deliverer = Deliverer(
            outbox,
            self.destinations,
            consent,
            concurrency=concurrency,
            poll_s=poll_s,
            transport=transport,
            seed=seed,
        )

    @classmethod
    def from_settings(cls, settings: Settings, consent: ConsentCheck, **kwargs: Any) -> Activation:
        """The workspace outbox and the destinations file named by Settings (none configured: a no-op)."""
        from activation.config import destinations_from_settings

        kwargs.setdefault("concurrency", settings.delivery_concurrency)
        return cls(
            Outbox.for_workspace(settings.workspace), destinations_from_settings(settings), consent, **kwargs
        )

    def enqueue(self, events: Any) -> int:
        """Queue membership events for every destination that wants their segment; returns new deliveries."""
        n = self.outbox.enqueue(events, self.destinations)
        if n:
            self.deliverer.notify()
        return n

    def start(self) -> Activation:
        self.deliverer.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self.deliverer.stop(timeout_s)

    def close(self) -> None:
        self.stop()
        self.outbox.close()

    def __enter__(self) -> Activation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
