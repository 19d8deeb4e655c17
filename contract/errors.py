"""One exception root for CXI; each layer subclasses it. HTTP codes are attached only at the service boundary."""

from __future__ import annotations


class CXIError(Exception):
    """Root of every error CXI raises on purpose."""


class ContractError(CXIError, ValueError):
    """A value broke a rule of the data contract. Names the field, the reason and (when known) the value."""

    def __init__(self, field: str, reason: str, value: object = None) -> None:
        self.field = field
        self.reason = reason
        self.value = value
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"{field}: {reason}{shown}")


class WorkspaceError(CXIError):
    """The workspace is missing something a step needs (e.g. no events imported yet)."""


class NotFoundError(CXIError, LookupError):
    """An identifier, customer, model or segment that is not known."""
