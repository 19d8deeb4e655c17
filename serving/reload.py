"""Hot reload: notice that the registry's ``champion`` alias moved, without restarting the server.

`ChampionWatch` asks the registry for the alias's version (one small SQLite query) at most every
``CXI_SERVING_RELOAD_SECONDS`` seconds (default 5; 0 checks on every request) and loads the new champion when
the version differs from the one served. `serving.scoring.ChurnScorer.refresh` swaps it in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from training.registry import Registry


class ReloadSettings(BaseSettings):
    """Serving's own knobs (environment ``CXI_SERVING_*``), apart from the shared `contract.Settings`."""

    model_config = SettingsConfigDict(env_prefix="CXI_SERVING_", extra="ignore")

    reload_seconds: float = Field(
        5.0, ge=0, description="How often (at most) to check whether the champion alias moved."
    )


class ChampionWatch:
    """Polls the version behind an alias and loads the model when it changes."""

    def __init__(
        self,
        version: Callable[[], str | None],
        load: Callable[[], Any],
        current: str,
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._version = version
        self._load = load
        self.current = str(current)
        self.interval = interval
        self.clock = clock
        self.checked_at = clock()
        self.failed: str | None = None  # a version that could not be loaded is not retried until it changes

    @classmethod
    def for_registry(
        cls, registry: Registry, name: str, current: str, settings: ReloadSettings | None = None
    ) -> ChampionWatch:
        interval = (settings or ReloadSettings()).reload_seconds
        return cls(
            lambda: registry.champion_version(name),
            lambda: registry.champion(name),
            current,
            interval=interval,
        )

    def due(self) -> bool:
        return self.clock() - self.checked_at >= self.interval

    def poll(self) -> Any | None:
        """The newly loaded champion if the alias moved since the last load, else None."""
        self.checked_at = self.clock()
        version = self._version()
        if version is None or version == self.current or version == self.failed:
            return None
        try:
            model = self._load()
        except Exception:
            self.failed = version
            raise
        self.current = str(model.version)
        return model
