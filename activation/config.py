"""Webhook destinations as data: a YAML file of named endpoints, validated with pydantic (clear errors).

```yaml
destinations:
  - name: crm
    url: https://crm.example.com/hooks/cxi
    secret_env: CXI_CRM_SECRET        # or `secret: ...` inline (not recommended)
    segments: [at_risk_high_value, lapsed_win_back]   # or "*" for every segment
  - name: ads
    url: https://ads.example.com/audiences
    secret_env: CXI_ADS_SECRET
    segments: "*"
    ads: true                         # consent purpose defaults to advertising
```

A delivery is only ever sent for a customer who holds the destination's consent ``purpose`` (marketing by
default, advertising for ``ads: true`` destinations).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract.errors import ContractError
from contract.schemas import ConsentPurpose

if TYPE_CHECKING:
    from contract.settings import Settings

#: File name of the destinations file inside the workspace when Settings does not name one.
DEFAULT_FILE = "destinations.yaml"


class Destination(BaseModel):
    """One webhook endpoint: where, how it is signed, which segments it receives and how retries behave."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    url: str
    secret: str | None = Field(None, min_length=16, repr=False)
    secret_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    segments: list[str] | Literal["*"] = "*"
    ads: bool = False
    purpose: ConsentPurpose | None = None
    enabled: bool = True
    #: Send *exit* events even for a customer without the purpose, so the tool drops someone who withdrew
    #: consent (a removal carries no new data). Off by default: nobody without consent appears at all.
    exits_without_consent: bool = False
    timeout_s: float = Field(5.0, gt=0, le=120)
    max_attempts: int = Field(8, ge=1, le=100)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    batch_size: int = Field(100, ge=1, le=10_000)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        import httpx

        try:
            u = httpx.URL(v)
        except Exception as exc:  # httpx.InvalidURL and friends
            raise ValueError(f"not a URL: {exc}") from exc
        if u.scheme not in ("http", "https") or not u.host:
            raise ValueError("must be an http:// or https:// URL with a host")
        return v

    @field_validator("segments")
    @classmethod
    def _segments(cls, v: list[str] | str) -> list[str] | str:
        if isinstance(v, list) and (not v or any(not s.strip() for s in v)):
            raise ValueError('must be a non-empty list of segment names, or "*"')
        return v

    @model_validator(mode="after")
    def _one_secret_and_backoff(self) -> Destination:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of `secret` or `secret_env`")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be >= backoff_base_s")
        return self

    @property
    def consent_purpose(self) -> ConsentPurpose:
        """The purpose a customer must have granted: explicit, else advertising for ads, else marketing."""
        if self.purpose is not None:
            return self.purpose
        return ConsentPurpose.advertising if self.ads else ConsentPurpose.marketing

    def wants(self, segment: str) -> bool:
        """Whether this destination receives entry/exit events of ``segment``."""
        return self.enabled and (self.segments == "*" or segment in self.segments)

    def resolved_secret(self) -> bytes:
        """The signing key; ``secret_env`` is read now so a missing variable is a clear error, not a bad signature."""
        if self.secret is not None:
            return self.secret.encode()
        value = os.environ.get(self.secret_env or "")
        if not value:
            raise ContractError(
                f"destinations.{self.name}.secret_env", "environment variable is not set", self.secret_env
            )
        return value.encode()


class DestinationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destinations: list[Destination] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> DestinationsFile:
        seen: set[str] = set()
        for d in self.destinations:
            if d.name in seen:
                raise ValueError(f"destination name {d.name!r} appears twice")
            seen.add(d.name)
        return self


def destinations_path(settings: Settings) -> Path:
    """Settings' destinations file, else ``<workspace>/destinations.yaml``."""
    return Path(settings.destinations_file or Path(settings.workspace) / DEFAULT_FILE)


def parse_destinations(data: object, source: str = "destinations") -> list[Destination]:
    """Validate already-parsed YAML/JSON; the first error becomes a ContractError naming the field path."""
    if data is None:
        return []
    try:
        return DestinationsFile.model_validate(data).destinations
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if loc.startswith("destinations.") and isinstance(data, dict):
            # name the destination, not only its index, where we can
            parts = loc.split(".")
            try:
                name = data["destinations"][int(parts[1])].get("name")
                if name:
                    parts[1] = f"{parts[1]}({name})"
                loc = ".".join(parts)
            except (KeyError, IndexError, ValueError, TypeError, AttributeError):
                pass
        more = f" (+{exc.error_count() - 1} more errors)" if exc.error_count() > 1 else ""
        shown = "***" if loc.endswith(".secret") else _redact(err.get("input"))
        raise ContractError(f"{source}:{loc}" if loc else source, err["msg"] + more, shown) from exc


def _redact(value: object) -> object:
    """The offending input with every inline ``secret`` masked (errors end up in logs and terminals)."""
    if isinstance(value, dict):
        return {k: "***" if k == "secret" and v is not None else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def load_destinations(
    path: Path | str, *, missing_ok: bool = False, check_secrets: bool = True
) -> list[Destination]:
    """Read and validate a destinations YAML file.

    ``missing_ok``: a missing file means no destinations (the default file is optional).
    ``check_secrets``: fail now if a ``secret_env`` variable is unset (off for read-only commands).
    """
    p = Path(path)
    if not p.exists():
        if missing_ok:
            return []
        raise ContractError("destinations_file", "file does not exist", str(p))
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ContractError(str(p), f"not valid YAML: {exc}") from exc
    out = parse_destinations(data, source=p.name)
    if check_secrets:
        for d in out:
            d.resolved_secret()
    return out


def destinations_from_settings(settings: Settings, *, check_secrets: bool = True) -> list[Destination]:
    """The configured destinations; none when the default file does not exist, an error when a named one does not."""
    return load_destinations(
        destinations_path(settings),
        missing_ok=settings.destinations_file is None,
        check_secrets=check_secrets,
    )
