"""Live segment membership: the customers an event, score change, merge or unmerge touched, re-evaluated at once.

The real-time engine keeps one `LiveSegments` per workspace and, per applied micro-batch of events:

1. ``observe(events, customer_ids)`` — consent statements of ``consent_update`` events join the state;
2. ``relabel({absorbed: survivor}, at=...)`` after a merge — the absorbed profile's consent statements move to
   the survivor (most restrictive wins) and its memberships exit;
3. ``evaluate(frame, at=...)`` — ``frame`` = customer_id + current features + scores of the touched customers
   (e.g. `features.live.LiveFeatures.read` plus the champions' scores); returns the entry/exit events, already
   appended to ``segment_events`` with their ``seq`` (what webhooks deliver).

Thresholds of percentile conditions are those frozen by the latest build (`reload` picks up a new build);
membership of customers not yet seen is read from the store once, then kept in memory.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.settings import Settings
from contract.workspace import Workspace
from segments.consent import COLUMNS, PURPOSES, STATEMENT_COLUMNS, defaults, statements, statements_of
from segments.definitions import Definitions
from segments.evaluate import EVENT_COLUMNS, Thresholds, evaluate
from segments.store import SegmentStore


class LiveSegments:
    """Per-customer re-evaluation of every segment, persisted as membership events."""

    def __init__(
        self,
        settings: Settings,
        ws: Workspace,
        *,
        defs: Definitions | None = None,
        store: SegmentStore | None = None,
    ) -> None:
        from segments.build import definitions

        self.settings = settings
        self.ws = ws
        self.defs = defs or definitions(settings)
        self.store = store or SegmentStore(ws)
        self._defaults = defaults(settings)
        self.reload()

    @classmethod
    def load(cls, settings: Settings, ws: Workspace) -> LiveSegments:
        return cls(settings, ws)

    def reload(self) -> None:
        """Take the latest build's thresholds and membership, and the workspace's consent statements."""
        build = self.store.latest_build()
        self.build_id = f"live:{build.build_id}" if build else "live"
        self.thresholds = build.thresholds if build else Thresholds()
        self._members: dict[str, list[tuple[str, pd.Timestamp]]] = {}  # customer -> (segment, entered_at)
        st = statements(self.settings, self.ws)
        self._statements: dict[str, pd.DataFrame] = {
            str(c): g.reset_index(drop=True) for c, g in st.groupby("customer_id")
        }
        self._consent: dict[str, dict[str, bool]] = {}  # per-customer consent state, from the statements

    # --- consent ----------------------------------------------------------------------------------
    def observe(self, events: pa.Table | pd.DataFrame, customer_ids: pa.Array | list[str]) -> list[str]:
        """Add the consent statements of the events (one customer id per row); returns customers whose
        statements changed."""
        if isinstance(events, pa.Table):
            # selected in Arrow: most batches hold no consent statement, and only statements are converted
            hit = pc.equal(events["type"], "consent_update")
            if not pc.any(hit).as_py():
                return []
            owners = pa.array(customer_ids, pa.string()) if isinstance(customer_ids, list) else customer_ids
            sub, ids = events.filter(hit).to_pandas(), owners.filter(hit).to_pylist()
        else:
            mask = (events["type"] == "consent_update").to_numpy()
            every = customer_ids.to_pylist() if isinstance(customer_ids, pa.Array) else list(customer_ids)
            sub, ids = events[mask], [c for c, m in zip(every, mask, strict=True) if m]
        if sub.empty:
            return []
        new = statements_of(sub, ids)
        changed = []
        for customer, rows in new.groupby("customer_id"):
            self._merge_statements(str(customer), rows)
            changed.append(str(customer))
        return changed

    def _merge_statements(self, customer: str, rows: pd.DataFrame) -> None:
        old = self._statements.get(customer)
        both = rows if old is None else pd.concat([old, rows], ignore_index=True)
        both = both.assign(customer_id=customer, at=pd.to_datetime(both["at"], utc=True))
        latest = both.sort_values("at", kind="stable").groupby(["profile", "purpose"], as_index=False).last()
        self._statements[customer] = latest[list(STATEMENT_COLUMNS)]
        self._consent.pop(customer, None)

    def _state(self, customer: str) -> dict[str, bool]:
        """A customer's consent per purpose (most restrictive over profiles; defaults), kept until its
        statements change."""
        state = self._consent.get(customer)
        if state is None:
            state = dict(self._defaults)
            st = self._statements.get(customer)
            if st is not None:
                for p, g in st.groupby("purpose")["granted"]:
                    state[str(p)] = bool(g.astype(bool).all())
            self._consent[customer] = state
        return state

    def consent(self, customer_ids: list[str]) -> pd.DataFrame:
        """customer_id + plain-bool consent_<purpose> (most restrictive over profiles; defaults)."""
        states = [self._state(c) for c in customer_ids]
        return pd.DataFrame(
            {
                "customer_id": pd.Series(list(customer_ids), dtype=object),
                **{COLUMNS[p]: pd.Series([st[p] for st in states], dtype=bool) for p in PURPOSES},
            }
        )

    def consenting(self, customer_ids: list[str], purpose: str) -> set[str]:
        """The customers among ``customer_ids`` who consent to ``purpose`` now (a webhook consent check)."""
        p = str(getattr(purpose, "value", purpose))
        frame = self.consent(list(dict.fromkeys(customer_ids)))
        return set(frame.loc[frame[COLUMNS[p]], "customer_id"])

    # --- membership -------------------------------------------------------------------------------
    def _previous(self, customer_ids: list[str]) -> pd.DataFrame:
        """Membership (customer_id, segment, entered_at) of `customer_ids` now: read from the store for a
        customer first seen, then kept in memory."""
        missing = [c for c in dict.fromkeys(customer_ids) if c not in self._members]
        if missing:
            self._remember(missing, self.store.current(missing))
        rows = [(c, seg, at) for c in customer_ids for seg, at in self._members[c]]
        return pd.DataFrame(
            {
                "customer_id": pd.Series([r[0] for r in rows], dtype=object),
                "segment": pd.Series([r[1] for r in rows], dtype=object),
                "entered_at": pd.to_datetime(pd.Series([r[2] for r in rows], dtype=object), utc=True),
            }
        )

    def _remember(self, customer_ids: list[str], membership: pd.DataFrame) -> None:
        """`customer_ids`' memberships are now `membership`'s rows of them (none: in no segment)."""
        for c in customer_ids:
            self._members[c] = []
        for c, seg, entered in zip(
            membership["customer_id"].astype(str),
            membership["segment"],
            membership["entered_at"],
            strict=True,
        ):
            self._members[c].append((str(seg), entered))

    def members_of(self, customer_id: str) -> list[str]:
        """The segments a customer is in now."""
        return sorted(self._previous([customer_id])["segment"].tolist())

    def relabel(self, relabel: dict[str, str], *, at: datetime | None = None) -> pd.DataFrame:
        """After merges (absorbed -> survivor): move consent statements to the survivor and make the absorbed
        ids leave every segment. Re-evaluate the survivors with `evaluate` afterwards."""
        at = at or datetime.now(UTC)
        for absorbed, survivor in relabel.items():
            st = self._statements.pop(absorbed, None)
            self._consent.pop(absorbed, None)
            if st is not None:
                self._merge_statements(survivor, st)
        prev = self._previous(list(relabel))
        if prev.empty:
            return self._append(prev.iloc[0:0])
        exits = pd.DataFrame(
            {
                "customer_id": prev["customer_id"].to_numpy(),
                "segment": prev["segment"].to_numpy(),
                "kind": "exit",
                "reason": [f"customer: merged into {relabel[c]}" for c in prev["customer_id"]],
                "at": pd.Timestamp(at),
                "build_id": self.build_id,
            }
        )
        consent = self.consent(list(relabel))
        exits = exits.merge(consent, on="customer_id", how="left")
        for c in relabel:
            self._members[c] = []
        return self._append(exits)

    def evaluate(self, frame: pd.DataFrame, *, at: datetime | None = None) -> pd.DataFrame:
        """Re-evaluate the customers of ``frame`` (customer_id + features + scores; consent columns are added
        from the live state when absent); returns the entry/exit events appended, with ``seq``."""
        at = at or datetime.now(UTC)
        frame = frame.drop_duplicates("customer_id", keep="last").reset_index(drop=True)
        ids = frame["customer_id"].astype(str).tolist()
        if any(c not in frame.columns for c in COLUMNS.values()):
            frame = frame.drop(columns=[c for c in COLUMNS.values() if c in frame.columns]).merge(
                self.consent(ids), on="customer_id", how="left"
            )
        result = evaluate(
            self.defs, frame, self._previous(ids), self.thresholds, at=at, build_id=self.build_id
        )
        self._remember(ids, result.membership)
        return self._append(result.events)

    def _append(self, events: pd.DataFrame) -> pd.DataFrame:
        if events.empty:
            return pd.DataFrame({"seq": pd.Series(dtype="int64"), **{c: [] for c in EVENT_COLUMNS}})
        return self.store.append_events(events[list(EVENT_COLUMNS)])
