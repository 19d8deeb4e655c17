"""Live anonymous matching for the real-time engine: train at start, pass every interval, merge by links.

`LiveMatching` trains `identity.live_match.LiveMatcher` on the workspace on a thread (the service answers
meanwhile), then holds every event the engine observes (the applier queues each batch, `observe`) and, every
`live_match_seconds`, links the anonymous profiles touched since the last pass (`run_pass`). The links go to
the engine's applier (`RealtimeEngine.queue_links`), which applies them in order with events (`apply`): they
are stored with the resolver's links first (a restart or replay keeps them), then live identity re-decides
(`LiveIdentity.link`) and features and hooks follow as for events. Matching is derived work: when it cannot
start, a pass fails or a write fails, that is logged and ingestion and scores go on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from features.periodic import Periodic
    from identity.live_match import LiveMatcher
    from serving.realtime import AppliedBatch, RealtimeEngine

log = logging.getLogger(__name__)


class LiveMatching:
    """The engine's live anonymous matching (see the module docstring)."""

    def __init__(self, engine: RealtimeEngine) -> None:
        self.engine = engine
        self.matcher: LiveMatcher | None = None  # set once trained and loaded
        self._todo: set[str] = set()  # customers touched since the last pass (under engine.state_lock)
        self._stored: set[tuple[str, str, str, str]] = set()  # links stored (a live one is stored once)
        self._periodic: Periodic | None = None
        self._closing = False

    def start(self, mode: Literal["auto", "on"], interval_s: float) -> threading.Thread:
        """Train on the workspace and load the events held on a thread, then pass every `interval_s`. A
        matcher that cannot train or misses the precision target (``auto``) leaves matching off (logged)."""
        thread = threading.Thread(
            target=self._start, args=(mode, interval_s), name="cxi-matcher-training", daemon=True
        )
        thread.start()
        return thread

    def _start(self, mode: Literal["auto", "on"], interval_s: float) -> None:
        from features.periodic import Periodic
        from identity.config import MatchConfig
        from identity.graph import EXTRA_EDGE_COLUMNS, EXTRA_EDGES_SCHEMA
        from identity.history import read_or_empty
        from identity.live_match import LiveMatcher
        from identity.state import EXTRA_TABLE

        engine = self.engine
        try:
            cfg = MatchConfig()
            matcher, note = LiveMatcher.train(
                engine.ws, mode=mode, threshold=cfg.anonymous_threshold, precision_target=cfg.precision_target
            )
            log.info("%s", note)
            if matcher is None:
                return
            matcher.load(engine.ws)  # the batch state, outside the lock
            stored = read_or_empty(engine.ws, EXTRA_TABLE, EXTRA_EDGES_SCHEMA)
            self._stored = set(zip(*(stored[c].to_pylist() for c in EXTRA_EDGE_COLUMNS[:4]), strict=True))
            logged = engine.log.read()  # the log so far, outside the lock: a long log takes seconds to read
            matcher.add(logged)
            seen = logged["seq"][-1].as_py() if logged.num_rows else 0  # rows come in seq order
            with engine.state_lock:  # from here the applier queues every batch it observes
                if self._closing:
                    return
                # and what was logged meanwhile (an event in both reads is held once per event_id)
                matcher.add(engine.log.read(after_seq=seen))
                self.matcher = matcher
                self._periodic = Periodic(self.run_pass, interval_s, "cxi-live-matching").start()
        except Exception:  # matching is derived work: ingestion and scores go on without it
            log.exception("live anonymous matching off: the matcher could not start")

    def observe(self, events: pa.Table, touched: list[str]) -> None:
        """A batch the applier observed (called under the engine's identity lock): held for the next pass."""
        if self.matcher is not None:
            self.matcher.add(events)
            self._todo.update(touched)

    def run_pass(self) -> int:
        """Link the anonymous profiles touched since the last pass and hand the links to the applier;
        returns how many were found. A failed pass keeps its profiles for the next (the error is logged)."""
        engine = self.engine
        if self.matcher is None:
            return 0
        with engine.state_lock:
            todo, self._todo = self._todo, set()
        if not todo:
            return 0
        try:
            edges = self.matcher.links(engine.identity, todo, engine.state_lock)
        except Exception:
            with engine.state_lock:
                self._todo |= todo
            raise
        if len(edges):
            engine.queue_links(edges)
        return len(edges)

    def apply(self, edges: pd.DataFrame) -> AppliedBatch | None:
        """Merge by links (on the applier): store the new ones with the resolver's, then re-decide identity
        and let features and hooks follow. A failed write is logged and the links are not applied."""
        from features.live_events import EVENTS_SCHEMA
        from identity.graph import EXTRA_EDGE_COLUMNS
        from identity.state import store_extra_edges

        engine = self.engine
        started = time.perf_counter()
        keys = list(zip(*(edges[c].tolist() for c in EXTRA_EDGE_COLUMNS[:4]), strict=True))
        new = [k not in self._stored for k in keys]
        try:
            if any(new):
                store_extra_edges(engine.ws, edges.loc[new, list(EXTRA_EDGE_COLUMNS)], append=True)
                self._stored.update(k for k, n in zip(keys, new, strict=True) if n)
        except Exception:
            log.exception("live anonymous matching: %d links not stored, not applied", len(edges))
            return None
        with engine.state_lock:
            update = engine.identity.link([((lt, lv), (rt, rv)) for lt, lv, rt, rv in keys])
        batch = engine.follow(EVENTS_SCHEMA.empty_table(), update, started, None)
        log.info("live anonymous matching: %d links, %d merges", len(edges), len(update.merges))
        return batch

    def close(self) -> None:
        """No new passes (a matcher still training installs nothing); links found are still applied."""
        with self.engine.state_lock:
            self._closing = True
        if self._periodic is not None:
            self._periodic.stop()
