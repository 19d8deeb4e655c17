"""Activation: deliver segment entry/exit events to marketing tools (signed webhooks, retries, dead letters).

Names are re-exported lazily (PEP 562), so importing the package pays for nothing it does not use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contract.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "Destination": "activation.config",
    "load_destinations": "activation.config",
    "destinations_from_settings": "activation.config",
    "Outbox": "activation.outbox",
    "Delivery": "activation.outbox",
    "idempotency_key": "activation.membership",
    "FrameConsent": "activation.consent",
    "WorkspaceConsent": "activation.consent",
    "Deliverer": "activation.webhooks",
    "ConsentCheck": "activation.webhooks",
    "sign": "activation.webhooks",
    "verify_signature": "activation.webhooks",
    "ping": "activation.webhooks",
    "Activation": "activation.runtime",
    "WebhookReceiver": "activation.receiver",
}
__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from activation.config import Destination, destinations_from_settings, load_destinations
    from activation.consent import FrameConsent, WorkspaceConsent
    from activation.membership import idempotency_key
    from activation.outbox import Delivery, Outbox
    from activation.receiver import WebhookReceiver
    from activation.runtime import Activation
    from activation.webhooks import ConsentCheck, Deliverer, ping, sign, verify_signature
