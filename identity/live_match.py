"""Probabilistic matching of live anonymous profiles, as their evidence grows.

`LiveMatcher` holds an `AnonymousMatcher` trained on the workspace (gated as the resolver's matcher is:
``auto`` keeps it only when its held-out precision meets the target) and an in-memory table of what every
event shows of its fragment and blocking keys (`profiles.FRAGMENT_COLUMNS_SQL`), loaded from the workspace
and appended per micro-batch. `links(identity, customers)` scores the anonymous profiles among ``customers``
against the customers sharing a block with them: on the slice of the log holding the fragments involved,
with block sizes counted over the whole log (so a NAT address shared by thousands stays unblocked), and
with each event's customer as the live identity resolves it now. It returns the matcher's edges (left: the
anonymous fragment, right: the known customer's anchor), which the caller applies with `LiveIdentity.link`
and stores with the resolver's probabilistic links (`identity.state.store_extra_edges`).

An IP block's size counts distinct fragment values (a device or cookie) over the log, where the batch
matcher counts (customer, fragment) pairs: they differ only where one device's events resolve to two customers
(a shared device), whose IP blocks the live pass may keep or drop differently. A device block (the profiles one
device shows up in) is counted on the slice, which holds all of its events, so exactly.

Events are queued by `add` (cheap: the applier calls it) and written at the next pass, once per event_id,
with their blocking keys (computed once per event). A pass is a few DuckDB joins over the held keys
(O(events held), no Python loop over them) plus one pass over the slice's events; the real-time engine
runs it every `live_match_seconds` on its own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Literal

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.errors import ContractError
from contract.schemas import IDENTIFIER_TYPES
from identity.match.anonymous import AnonymousMatcher
from identity.match.profiles import FRAGMENT_COLUMNS_SQL, WEAK_TYPES, block_keys_sql
from identity.probabilistic import empty_edges, gated_anonymous_matcher

if TYPE_CHECKING:
    from contract.workspace import Workspace
    from identity.live import LiveIdentity

#: Contract event columns the matcher reads (identifiers resolve the event's customer).
EVENT_COLUMNS: tuple[str, ...] = ("event_id", "occurred_at", "user_agent", "ip", "channel", "category")
_SELECT = ", ".join(
    [*(c for c in EVENT_COLUMNS if c not in ("channel", "category")), *IDENTIFIER_TYPES, FRAGMENT_COLUMNS_SQL]
)


class LiveMatcher:
    """A trained anonymous matcher over the events held in memory (see the module docstring)."""

    def __init__(self, matcher: AnonymousMatcher) -> None:
        if not hasattr(matcher, "model_"):
            raise ContractError("matcher", "not fitted: train it first (LiveMatcher.train)")
        self.matcher = matcher
        self._lock = threading.Lock()  # the DuckDB connection (a pass, a load)
        self._queue_lock = threading.Lock()  # events queued by `add` (the applier) for the next pass
        self._queue: list[pa.Table] = []
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")
        self._con.execute("SET threads = 1")
        self._con.execute("SET enable_progress_bar = false")
        self._created = False

    @classmethod
    def train(
        cls,
        ws: Workspace,
        *,
        mode: Literal["auto", "on"] = "auto",
        threshold: float = 0.8,
        precision_target: float = 0.99,
    ) -> tuple[LiveMatcher | None, str]:
        """Train on the workspace's resolved events, gated as the resolver's matcher is
        (`identity.probabilistic.gated_anonymous_matcher`); (None, why) when it cannot train or, in ``auto``,
        misses ``precision_target``."""
        with ws.connect("events", "identity_map", "identity_guard_log") as con:
            matcher, why = gated_anonymous_matcher(
                con, threshold, mode=mode, precision_target=precision_target
            )
        return (cls(matcher) if matcher is not None else None), f"live anonymous matching {why}"

    # --- the events held ---
    def add(self, events: pa.Table) -> int:
        """Queue events (contract columns) for the next pass; returns how many carry a device or cookie. Cheap
        (the applier calls it under the engine's identity lock): the table is written at the pass, once per
        event_id, so an event queued twice (a start-up tail and the applier) is held once."""
        missing = [
            c
            for c in ("event_id", "occurred_at", "anonymous_id", "device_id")
            if c not in events.column_names
        ]
        if missing:
            raise ContractError("events", f"missing column(s) {', '.join(missing)}")
        n = events.num_rows
        cols = {
            c: (events[c] if c in events.column_names else pa.nulls(n, pa.string()))
            for c in (*EVENT_COLUMNS, *IDENTIFIER_TYPES)
        }
        source = pa.table(cols)
        with self._queue_lock:
            self._queue.append(source)
        framed = pc.or_(pc.is_valid(source["device_id"]), pc.is_valid(source["anonymous_id"]))
        return int(pc.sum(framed).as_py() or 0)

    def load(self, ws: Workspace) -> int:
        """Hold the workspace's events (the state the live identity loads); returns how many are held."""
        if ws.exists("events"):
            with ws.connect("events") as con:
                have = {r[0] for r in con.execute("DESCRIBE events").fetchall()}
                cols = [c for c in (*EVENT_COLUMNS, *IDENTIFIER_TYPES) if c in have]
                self.add(con.sql(f"SELECT {', '.join(cols)} FROM events").to_arrow_table())
        with self._lock:
            self._drain()
            return self._count() if self._created else 0

    def _drain(self) -> None:
        """Write the queued events into the table, each event_id once, and their blocking keys into
        ``_lm_keys`` (computed once per event, not per pass); under `_lock`."""
        with self._queue_lock:
            queued, self._queue = self._queue, []
        if not queued:
            return
        con = self._con
        con.register("_lm_in", pa.concat_tables(queued, promote_options="permissive"))
        try:
            fresh = "" if not self._created else "AND event_id NOT IN (SELECT event_id FROM _lm)"
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _lm_new AS
                SELECT DISTINCT ON (event_id) {_SELECT} FROM _lm_in
                WHERE (device_id IS NOT NULL OR anonymous_id IS NOT NULL) {fresh}""").fetchall()
            keys = f"SELECT DISTINCT fid, rule, k FROM ({block_keys_sql('_lm_new', 'frag')})"
            if self._created:
                con.execute("INSERT INTO _lm SELECT * FROM _lm_new").fetchall()
                con.execute(f"INSERT INTO _lm_keys {keys}").fetchall()
            else:
                con.execute("CREATE TABLE _lm AS SELECT * FROM _lm_new").fetchall()
                con.execute(f"CREATE TABLE _lm_keys AS {keys}").fetchall()
                self._created = True
            con.execute("DROP TABLE _lm_new").fetchall()
        finally:
            con.unregister("_lm_in")

    def _count(self) -> int:
        return int(self._con.execute("SELECT count(*) FROM _lm").fetchall()[0][0])

    @property
    def events(self) -> int:
        """Events held (queued ones written first)."""
        with self._lock:
            self._drain()
            return self._count() if self._created else 0

    # --- a pass ---
    def links(
        self,
        identity: LiveIdentity,
        customers: Iterable[str],
        identity_lock: AbstractContextManager[object] | None = None,
    ) -> pd.DataFrame:
        """The matcher's edges for the anonymous profiles among ``customers`` (live ids; merged ids resolve),
        each to its best known customer at or above the threshold (`AnonymousMatcher.links`' columns).

        ``identity_lock`` is held while the live identity is read (the profiles asked, then the customers of
        the slice's events), not while the log is scanned: a concurrent applier waits only for those reads."""
        guard = identity_lock or nullcontext()
        with guard:
            anon = [
                c
                for c in dict.fromkeys(identity.canonical_id(c) for c in customers)
                if identity.identifiers_of(c) and not identity.is_known(c)
            ]
            seeds = sorted({v for c in anon for t, v in identity.identifiers_of(c) if t in WEAK_TYPES})
        if not seeds:
            return empty_edges()
        max_block = int(self.matcher.max_block)
        with self._lock:
            self._drain()
            if not self._created:
                return empty_edges()
            con = self._con
            con.register("_lm_seed", pa.table({"frag": pa.array(seeds, pa.string())}))
            try:
                sizes = con.sql("""
                    WITH k AS (SELECT * FROM _lm_keys),
                    seed_keys AS (
                        SELECT DISTINCT rule, k FROM k
                        WHERE fid IN (SELECT frag FROM _lm_seed) AND rule <> 'device')
                    SELECT rule, k, count(DISTINCT fid) AS n FROM k JOIN seed_keys USING (rule, k)
                    GROUP BY rule, k""").to_arrow_table()
                con.register("_lm_sizes", sizes)
                slice_ = con.sql(f"""
                    SELECT * FROM _lm WHERE frag IN (SELECT frag FROM _lm_seed) OR frag IN (
                        SELECT fid FROM _lm_keys JOIN _lm_sizes USING (rule, k) WHERE n BETWEEN 2 AND {max_block})
                """).to_arrow_table()
                con.unregister("_lm_sizes")
            finally:
                con.unregister("_lm_seed")
        if slice_.num_rows == 0:
            return empty_edges()
        with guard:
            owners = _owners(identity, slice_)
            keep = pa.array([o is not None for o in owners])
            slice_ = slice_.append_column("customer_id", pa.array(owners, pa.string())).filter(keep)
            members = {c: identity.identifiers_of(c) for c in set(slice_["customer_id"].to_pylist())}
        # a device block is the profiles one device or cookie shows up in: every event of it is in the slice,
        # so the slice counts its customers exactly
        per = (
            slice_.group_by(["frag", "customer_id"])
            .aggregate([])
            .group_by("frag")
            .aggregate([("customer_id", "count")])
        )
        sizes = pa.concat_tables(
            [
                sizes,
                pa.table(
                    {
                        "rule": pa.array(["device"] * per.num_rows, pa.string()),
                        "k": per["frag"].cast(pa.string()),
                        "n": per["customer_id_count"].cast(sizes.schema.field("n").type),
                    }
                ),
            ]
        )
        identity_map = pa.table(
            {
                "identifier_type": [t for ks in members.values() for t, _ in ks],
                "identifier_value": [v for ks in members.values() for _, v in ks],
                "customer_id": [c for c, ks in members.items() for _ in ks],
            }
        )
        work = duckdb.connect()
        try:
            work.execute("SET TimeZone = 'UTC'")
            work.register("_lm_slice", slice_)
            work.register("_lm_sizes", sizes)
            work.register("identity_map", identity_map)
            edges = self.matcher.links(work, resolved="_lm_slice", block_sizes="_lm_sizes")
        finally:
            work.close()
        wanted = set(seeds)
        return edges[edges["left_value"].isin(wanted).to_numpy(bool)].reset_index(drop=True)


def _owners(identity: LiveIdentity, events: pa.Table) -> list[str | None]:
    """Each event's customer as the live identity resolves it now (None: an identifier it has not seen)."""
    cols = [events[t].to_pylist() for t in IDENTIFIER_TYPES]
    out: list[str | None] = []
    for i in range(events.num_rows):
        row = tuple((t, c[i]) for t, c in zip(IDENTIFIER_TYPES, cols, strict=True) if c[i] is not None)
        out.append(identity.customer_of(row))
    return out
