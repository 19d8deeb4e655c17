"""Live identity: stitch each micro-batch of events as it arrives, with the batch resolver's rules and ids.

`LiveIdentity.load(ws)` rebuilds the raw evidence of the deterministic graph from the workspace (one
vectorised stitcher pass, which also brings the map up to date with events imported since the last resolve)
and keeps it in dicts; `observe(events)` adds a micro-batch's evidence and re-decides only the identifiers it
can affect (`identity.live_graph`): guards (junk, shared, contested, conflict cut, never-link) and persistent
ids (`identity.ids`) come out exactly as `IdentityResolver.resolve()` over the same events would give them, so
the partition of identifiers and events equals the batch one. A login folds the anonymous profile of its
cookie into the known customer (the older cluster's id survives, the other becomes an alias, audited as batch
merges are); a guard that starts to fire later (a device reaching its user limit) splits, and the past events
whose customer changes are reported in `LiveUpdate.moved`. Which identifier decides an event's customer
follows `identity.resolved` (highest priority in the map, junk and shared ones last).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from contract.errors import ContractError
from contract.schemas import IDENTIFIER_TYPES
from contract.workspace import Workspace
from identity.config import NODE_TYPES, StitchConfig
from identity.history import (
    ALIASES_SCHEMA,
    ALIASES_TABLE,
    AUDIT_SCHEMA,
    AUDIT_TABLE,
    MEMBERS_SCHEMA,
    MEMBERS_TABLE,
    NEVER_LINK_SCHEMA,
    NEVER_LINK_TABLE,
    read_or_empty,
)
from identity.live_audit import merge_rows, split_rows
from identity.live_graph import Evidence, Key, Subgraph, assign_ids
from identity.live_load import load_evidence
from identity.stitch import IDENTITY_MAP_SCHEMA

_PRIO = {t: i for i, t in enumerate(NODE_TYPES)}
_ANONYMOUS_TYPES = frozenset({"anonymous_id", "device_id"})


@dataclass
class Merge:
    survivor: str
    absorbed: list[str]
    reason: str  # the rules of the bridging edges ("user", "pair", ...), as in `identity_audit.rule`
    event_id: str | None  # first event of the batch touching the absorbed profile


@dataclass
class LiveUpdate:
    customer_ids: pa.Array  # one per input row, never null
    merges: list[Merge]
    touched: list[str]  # live customers whose events or identifiers changed
    relabel: dict[str, str]  # absorbed customer_id -> survivor
    #: past events (not of this batch) whose customer changed beyond ``relabel``: a split, or a guard that
    #: started to fire (event_id -> new customer_id); empty unless a contested/shared limit was crossed
    moved: dict[str, str] = field(default_factory=dict)


class LiveIdentity:
    """Deterministic identity resolution, one micro-batch at a time (see the module docstring)."""

    def __init__(self, config: StitchConfig | None = None, workspace: Workspace | None = None) -> None:
        self.config = config or StitchConfig()
        self.workspace = workspace
        self.evidence = Evidence(self.config)
        self._cust: dict[Key, str] = {}
        self._members: dict[str, set[Key]] = {}
        self._aliases: dict[str, str] = {}  # alias -> survivor (possibly chained; `canonical_id` follows)
        self._alias_at: dict[str, datetime] = {}
        self._audit: list[dict[str, object]] = []
        self._audit_members: list[dict[str, object]] = []
        self._live_events: dict[str, tuple[Key, ...]] = {}  # observed since load (for `moved`)
        self._events_of: dict[Key, list[str]] = {}

    # --- loading ---
    @classmethod
    def load(cls, ws: Workspace, config: StitchConfig | None = None) -> LiveIdentity:
        """From the workspace: events (+ records, stored probabilistic links), the identity map (ids),
        never-link constraints and aliases. An empty workspace gives an empty state."""
        live = cls(config, ws)
        never = read_or_empty(ws, NEVER_LINK_TABLE, NEVER_LINK_SCHEMA)
        for cid, side, t, v in zip(
            *(
                never.column(c).to_pylist()
                for c in ("constraint_id", "side", "identifier_type", "identifier_value")
            ),
            strict=True,
        ):
            live.evidence.never.setdefault((t, v), []).append((cid, int(side)))
        aliases = read_or_empty(ws, ALIASES_TABLE, ALIASES_SCHEMA)
        live._aliases = dict(
            zip(aliases["alias_id"].to_pylist(), aliases["customer_id"].to_pylist(), strict=True)
        )
        live._alias_at = dict(
            zip(aliases["alias_id"].to_pylist(), aliases["merged_at"].to_pylist(), strict=True)
        )
        loaded = load_evidence(ws, live.evidence, never)
        if loaded is not None:
            keys, customers, new_aliases = loaded
            live._cust = dict(zip(keys, customers, strict=True))
            for k, c in live._cust.items():
                live._members.setdefault(c, set()).add(k)
            at = datetime.now(UTC)
            for a, s in new_aliases:
                live._aliases[a] = s
                live._alias_at[a] = at
        return live

    # --- lookups (serving.scoring.IdentityLookup) ---
    def customer_for(self, identifier_type: str, value: str) -> str | None:
        """The customer an identifier belongs to; None when unknown, junk or shared (as `IdentityIndex`)."""
        if identifier_type not in _PRIO:
            raise ContractError(
                "identifier_type",
                f"unknown identifier type (one of {', '.join(NODE_TYPES)})",
                identifier_type,
            )
        key = (identifier_type, value)
        if key not in self._cust or self.evidence.is_unlinking(key):
            return None
        return self._cust[key]

    def canonical_id(self, customer_id: str) -> str:
        """The live id for ``customer_id``: itself, or the survivor it was merged into (chains followed)."""
        seen = 0
        while customer_id in self._aliases and customer_id not in self._members and seen < 64:
            customer_id = self._aliases[customer_id]
            seen += 1
        return customer_id

    def identifiers_of(self, customer_id: str) -> list[tuple[str, str]]:
        """Every (identifier_type, identifier_value) of a customer (aliases resolve); empty when unknown."""
        return sorted(
            self._members.get(self.canonical_id(customer_id), ()), key=lambda k: (_PRIO[k[0]], k[1])
        )

    def customer_of(self, row: tuple[Key, ...]) -> str | None:
        """The customer of an event holding these identifiers (in IDENTIFIER_TYPES order), by the batch rule
        (`identity.resolved`); None when it holds none this state has seen."""
        if not any(k in self._cust for k in row):
            return None
        return self._resolve(row)

    def is_known(self, customer_id: str) -> bool:
        """True when the profile holds an identifier beyond cookies and devices (a user_id, email, phone,
        loyalty id or record): the customer has identified themselves at least once."""
        return any(
            k[0] not in _ANONYMOUS_TYPES for k in self._members.get(self.canonical_id(customer_id), ())
        )

    def __len__(self) -> int:
        return len(self._cust)

    # --- the live path ---
    def observe(self, events: pa.Table) -> LiveUpdate:
        """Stitch one micro-batch (contract events schema, log order); see the module docstring.

        An event_id already observed since load is not counted twice (its customer is still returned); events
        already in the workspace at load must not be observed again.
        """
        missing = [c for c in ("event_id", "occurred_at", *IDENTIFIER_TYPES) if c not in events.column_names]
        if missing:
            raise ContractError("events", f"missing column(s) {', '.join(missing)}")
        n = events.num_rows
        if n == 0:
            return LiveUpdate(pa.array([], pa.string()), [], [], {})
        ids = events.column("event_id").to_pylist()
        ts = [x for c in events.column("occurred_at").chunks for x in c.view(pa.int64()).to_pylist()]
        cols = [events.column(t).to_pylist() for t in IDENTIFIER_TYPES]
        rows = [
            tuple((t, c[i]) for t, c in zip(IDENTIFIER_TYPES, cols, strict=True) if c[i] is not None)
            for i in range(n)
        ]
        for i in range(n):  # validate before any state changes
            if ids[i] is None or ts[i] is None:
                raise ContractError("event_id" if ids[i] is None else "occurred_at", "must not be null", i)
            if not rows[i]:
                raise ContractError("identifiers", "an event needs at least one identifier", ids[i])
        ev = self.evidence
        # a later sighting of one known identifier adds no evidence: nothing to re-decide for it
        seeds = {k for r, t in zip(rows, ts, strict=True) if not self._known_alone(r, t) for k in r}
        closed = ev.closure(self._may_lose_edges(rows))
        was_unlinking = {k for k in seeds if k in ev.first_seen and ev.is_unlinking(k)}
        fresh: dict[str, int] = {}
        for i in range(n):
            if ids[i] in self._live_events or ids[i] in fresh:
                continue  # a replayed event adds no evidence
            fresh[ids[i]] = i
            self._add_evidence(rows[i], ts[i])
        closed |= ev.closure(seeds)
        return self._redecide(closed, seeds, was_unlinking, rows, ids, fresh)

    def link(self, edges: Iterable[tuple[Key, Key]]) -> LiveUpdate:
        """Add probabilistic links (pairs of identifiers, e.g. `identity.live_match.LiveMatcher.links`) and
        re-decide the identifiers they can affect, as `observe` does for events: the result equals a batch
        resolve over the same events with these links among its stored probabilistic edges (a link's time
        is its later end's first sighting; links to unknown or junk identifiers are ignored, as batch does).
        Persisting them (`identity.state.store_extra_edges`) is the caller's."""
        ev = self.evidence
        pairs = [
            (a, b)
            for a, b in edges
            if a != b and a in ev.first_seen and b in ev.first_seen and a not in ev.junk and b not in ev.junk
        ]
        if not pairs:
            return LiveUpdate(pa.array([], pa.string()), [], [], {})
        seeds = {k for pair in pairs for k in pair}
        was_unlinking = {k for k in seeds if ev.is_unlinking(k)}
        for a, b in pairs:
            ev.add_edge(a, b, "probabilistic", max(ev.first_seen[a], ev.first_seen[b]))
        return self._redecide(ev.closure(seeds), seeds, was_unlinking, [], [], {})

    def _redecide(
        self,
        closed: set[Key],
        seeds: set[Key],
        was_unlinking: set[Key],
        rows: list[tuple[Key, ...]],
        ids: list[str],
        fresh: dict[str, int],
    ) -> LiveUpdate:
        """Re-decide `closed` (guards, components, persistent ids) after new evidence; audit merges and
        splits; `rows`/`ids`/`fresh`: the batch's events (identifiers, event ids, first index of each new
        event id), whose customers the update returns in order."""
        ev = self.evidence
        prior = {k: self._cust[k] for k in closed if k in self._cust}
        sub = Subgraph.build(ev, closed)
        new_cust, aliases = assign_ids(sub, prior)
        for k, c in new_cust.items():
            old = prior.get(k)
            if old != c:
                if old is not None:
                    self._members[old].discard(k)
                self._members.setdefault(c, set()).add(k)
                self._cust[k] = c
        for old in set(prior.values()):
            if not self._members.get(old):
                self._members.pop(old, None)
        at = datetime.now(UTC)
        for c in new_cust.values():  # an id that lives again (a split restoring it) is no alias
            self._aliases.pop(c, None)
        for a, s in aliases.items():
            self._aliases[a] = s
            self._alias_at[a] = at
        audit, members, reasons = merge_rows(sub, prior, new_cust, aliases, at)
        audit += split_rows(prior, new_cust, at)
        self._audit.extend(audit)
        self._audit_members.extend(members)
        merges = _merges(aliases, reasons, prior, rows, ids)
        changed = {k for k, c in new_cust.items() if k in prior and c != aliases.get(prior[k], prior[k])}
        changed |= {k for k in seeds if (k in was_unlinking) != ev.is_unlinking(k) and k in prior}
        batch_ids = set(ids)
        moved, losers = (
            self._moved(changed, prior, seeds, was_unlinking, aliases, batch_ids) if changed else ({}, set())
        )
        customer_ids = [self._resolve(r) for r in rows]
        for i in fresh.values():
            self._live_events[ids[i]] = rows[i]
            for k in rows[i]:
                self._events_of.setdefault(k, []).append(ids[i])
        regrouped = [k for k, c in new_cust.items() if prior.get(k) != c]
        touched = set(customer_ids) | set(aliases.values()) | set(moved.values()) | losers
        touched |= {new_cust[k] for k in regrouped} | {
            self.canonical_id(prior[k]) for k in regrouped if k in prior
        }
        return LiveUpdate(
            pa.array(customer_ids, pa.string()),
            merges,
            sorted(c for c in touched if c in self._members),
            dict(aliases),
            moved,
        )

    def _known_alone(self, row: tuple[Key, ...], ts: int) -> bool:
        """An event whose only identifier is already placed and not first seen by it: it moves no edge,
        guard or first sighting, so its customer is the identifier's (most app events, once logged in)."""
        if len(row) != 1 or row[0] not in self._cust:
            return False
        first = self.evidence.first_seen.get(row[0])
        return first is not None and ts >= first

    def _may_lose_edges(self, rows: list[tuple[Key, ...]]) -> set[Key]:
        """Identifiers whose edges the batch may remove: a new user_id observation can make another user_id
        dominant or the identifier shared; anything else only adds edges, so the raw components before the
        batch are needed (for the closure) only around these."""
        users = self.evidence.users
        strong = self.evidence.strong
        out: set[Key] = set()
        for row in rows:
            got = dict(row)
            for ta, tb in self.config.guarded_links:  # a second strong value ends the carrier's guarded edges
                a, b = got.get(ta), got.get(tb)
                if a is not None and b is not None:
                    seen = strong.get((ta, a), {}).get(tb)
                    if seen and b not in seen:
                        out.add((ta, a))
            if row and row[0][0] == "user_id":
                u = row[0][1]
                for k in row[1:]:
                    per = users.get(k)
                    if per and (u not in per or len(per) > 1):
                        out.add(k)
        return out

    def _add_evidence(self, row: tuple[Key, ...], ts: int) -> None:
        ev = self.evidence
        for k in row:
            ev.see(k, ts)
        user = next((v for t, v in row if t == "user_id"), None)
        if user is not None and ("user_id", user) not in ev.junk:
            for k in row:
                if k[0] != "user_id" and k not in ev.junk:
                    ev.add_user_obs(k, user, ts)
        if len(row) > 1:
            got = dict(row)
            for ta, tb in self.config.unauthenticated_links:
                a, b = got.get(ta), got.get(tb)
                if a is not None and b is not None and (ta, a) not in ev.junk and (tb, b) not in ev.junk:
                    ev.add_edge((ta, a), (tb, b), "pair", ts)
            auth = user is not None and ("user_id", user) not in ev.junk
            for ta, tb in self.config.guarded_links:
                a, b = got.get(ta), got.get(tb)
                if a is not None and b is not None and (ta, a) not in ev.junk and (tb, b) not in ev.junk:
                    ev.add_strong_obs((ta, a), (tb, b), ts, auth)

    def _resolve(
        self, row: tuple[Key, ...], cust: dict[Key, str] | None = None, unlinking: set[Key] | None = None
    ) -> str:
        """`identity.resolved`'s rule: the first linking identifier in priority order, else the first one."""
        cust = cust or self._cust
        first = None
        for k in row:  # rows hold identifiers in IDENTIFIER_TYPES (priority) order
            c = cust.get(k) or self._cust.get(k)
            if c is None:
                continue
            if not (k in unlinking if unlinking is not None else self.evidence.is_unlinking(k)):
                return c
            first = first or c
        if first is None:
            raise ContractError("identifiers", "an event needs at least one identifier", row)
        return first

    def _moved(
        self,
        changed: set[Key],
        prior: dict[Key, str],
        seeds: set[Key],
        was_unlinking: set[Key],
        aliases: dict[str, str],
        exclude: set[str],
    ) -> tuple[dict[str, str], set[str]]:
        """Past events holding a changed identifier whose customer is now other than the relabelled old one
        (event_id -> new customer), and the customers they leave."""
        past: dict[str, tuple[Key, ...]] = {}
        for k in changed:
            for e in self._events_of.get(k, ()):
                past[e] = self._live_events[e]
        past.update((e, r) for e, r in self._stored_events(changed).items() if e not in past)
        ev = self.evidence
        touched_keys = {k for r in past.values() for k in r}
        old_unlinking = {
            k for k in touched_keys if (k in was_unlinking if k in seeds else ev.is_unlinking(k))
        }
        out: dict[str, str] = {}
        losers: set[str] = set()
        for e, row in past.items():
            if e in exclude:
                continue
            old = self._resolve(row, prior, old_unlinking)
            old, new = aliases.get(old, old), self._resolve(row)
            if new != old:
                out[e] = new
                losers.add(old)
        return out, losers

    def _stored_events(self, keys: set[Key]) -> dict[str, tuple[Key, ...]]:
        """Workspace events holding any of ``keys`` (the rare path of a split): event_id -> identifiers."""
        ws = self.workspace
        if ws is None or not ws.exists("events"):
            return {}
        probe = pa.table({"t": [k[0] for k in keys], "v": [k[1] for k in keys]})
        cond = " OR ".join(f"{t} IN (SELECT v FROM _probe WHERE t = '{t}')" for t in IDENTIFIER_TYPES)
        with ws.connect("events") as con:
            con.register("_probe", probe)
            got = con.sql(
                f"SELECT event_id, {', '.join(IDENTIFIER_TYPES)} FROM events WHERE {cond}"
            ).fetchall()
        return {
            r[0]: tuple((t, v) for t, v in zip(IDENTIFIER_TYPES, r[1:], strict=True) if v is not None)
            for r in got
        }

    # --- audit (shapes of `identity.history`) ---
    def pending_audit(self) -> tuple[pa.Table, pa.Table]:
        """Audit rows (`identity_audit`) and absorbed members (`identity_audit_members`) since the last call;
        the caller persists them (`write_audit`)."""
        audit = pa.Table.from_pylist(self._audit, schema=AUDIT_SCHEMA)
        members = pa.Table.from_pylist(self._audit_members, schema=MEMBERS_SCHEMA)
        self._audit, self._audit_members = [], []
        return audit, members

    def write_audit(self, ws: Workspace | None = None) -> int:
        """Append the pending audit rows to the workspace and replace its aliases table; returns rows written."""
        ws = ws or self.workspace
        if ws is None:
            raise ContractError("workspace", "no workspace to write the audit to")
        audit, members = self.pending_audit()
        ws.append(AUDIT_TABLE, audit)
        ws.append(MEMBERS_TABLE, members)
        if self._aliases:
            ws.replace(ALIASES_TABLE, self.aliases())
        return audit.num_rows

    # --- state as tables ---
    def snapshot(self) -> pa.Table:
        """The current identity map in the batch `identity_map` schema (ordered as the stitcher writes it)."""
        fs = self.evidence.first_seen
        items = sorted(self._cust.items(), key=lambda kc: (kc[1], _PRIO[kc[0][0]], kc[0][1]))
        return pa.table(
            {
                "identifier_type": pa.array([k[0] for k, _ in items], pa.string()),
                "identifier_value": pa.array([k[1] for k, _ in items], pa.string()),
                "customer_id": pa.array([c for _, c in items], pa.string()),
                "first_seen": pa.array([fs[k] for k, _ in items], pa.int64()).cast(
                    IDENTITY_MAP_SCHEMA.field("first_seen").type
                ),
            },
            schema=IDENTITY_MAP_SCHEMA,
        )

    def aliases(self) -> pa.Table:
        """alias_id -> final survivor, merged_at (`identity_aliases` schema)."""
        rows = sorted((a, self.canonical_id(a)) for a in self._aliases if a not in self._members)
        return pa.table(
            {
                "alias_id": pa.array([a for a, _ in rows], pa.string()),
                "customer_id": pa.array([s for _, s in rows], pa.string()),
                "merged_at": pa.array(
                    [self._alias_at.get(a) for a, _ in rows], ALIASES_SCHEMA.field("merged_at").type
                ),
            },
            schema=ALIASES_SCHEMA,
        )

    def forget_live_events(self) -> None:
        """Drop the in-memory index of events observed since load, once they are in the workspace's `events`
        table (after compaction): later splits find them there."""
        self._live_events.clear()
        self._events_of.clear()


def _merges(
    aliases: dict[str, str],
    reasons: dict[str, str],
    prior: dict[Key, str],
    rows: list[tuple[Key, ...]],
    ids: list[str],
) -> list[Merge]:
    """One `Merge` per survivor, with the first event of the batch touching one of its absorbed profiles."""
    by_survivor: dict[str, list[str]] = {}
    for absorbed, survivor in sorted(aliases.items()):
        by_survivor.setdefault(survivor, []).append(absorbed)
    merges = []
    for survivor, absorbed in by_survivor.items():
        gone = set(absorbed)
        first = next((ids[i] for i, r in enumerate(rows) if any(prior.get(k) in gone for k in r)), None)
        rules = sorted({r for a in absorbed for r in reasons[a].split(",")} - {"unknown"})
        merges.append(Merge(survivor, absorbed, ",".join(rules) or "unknown", first))
    return merges
