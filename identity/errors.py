"""Errors of the identity layer."""

from __future__ import annotations

from contract.errors import CXIError


class IdentityError(CXIError):
    """Identity resolution broke one of its own invariants, or was given an unusable configuration."""
