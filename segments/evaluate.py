"""Vectorised evaluation of every segment over a frame of customers, given their previous membership.

The frame holds one row per customer: ``customer_id``, the columns the definitions name (features, scores),
``consent_<purpose>`` (plain bools, defaults applied: `segments.consent.with_consent`) and optionally
``lifecycle_stage`` (computed from the lifecycle rules when absent). Per segment, in this order:

1. conditions, with hysteresis: a previous member is held to each condition's ``exit`` threshold, anyone else
   to its ``enter`` threshold; percentile conditions use the values frozen with the build (`Thresholds`);
2. lifecycle stage allowed; 3. not suppressed (event within its window); 4. required consent (a customer who
   qualifies but lacks a purpose is excluded and counted under that purpose);
5. offer-bearing exclusivity: of the eligible offer-bearing segments only the highest priority keeps the
   customer (the others count it as ``superseded``).

Entries and exits are the differences with the previous membership; each carries its reason (the first
failing step for an exit). Segments naming a column the frame lacks (e.g. no intent model) are skipped:
their membership is carried over unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from contract.errors import ContractError
from segments.consent import COLUMNS as CONSENT_COLUMNS
from segments.consent import PURPOSES
from segments.definitions import Condition, Definitions
from segments.thresholds import Thresholds, absolute, condition_text, describe, freeze, groups, numeric

__all__ = ["EVENT_COLUMNS", "Evaluation", "Thresholds", "describe", "evaluate", "freeze", "stages"]

STAGE_COLUMN = "lifecycle_stage"
MEMBERSHIP_COLUMNS = ("customer_id", "segment", "entered_at")
EVENT_COLUMNS = ("customer_id", "segment", "kind", "reason", "at", "build_id", *CONSENT_COLUMNS.values())
_OPS = {
    ">=": np.greater_equal,
    ">": np.greater,
    "<=": np.less_equal,
    "<": np.less,
    "==": np.equal,
    "!=": np.not_equal,
}


def _compare(c: Condition, v: np.ndarray, threshold: float) -> np.ndarray:
    if c.op == "is_null":
        return np.isnan(v)
    if c.op == "not_null":
        return ~np.isnan(v)
    with np.errstate(invalid="ignore"):
        out = _OPS[c.op](v, threshold)
    return out & ~np.isnan(v)


def stages(defs: Definitions, frame: pd.DataFrame) -> np.ndarray:
    """Lifecycle stage per row (first stage whose conditions hold; None when none does)."""
    n = len(frame)
    if STAGE_COLUMN in frame.columns:
        return frame[STAGE_COLUMN].to_numpy(dtype=object)
    masks, names = [], []
    for st in defs.lifecycle:
        m = np.ones(n, dtype=bool)
        for c in st.conditions:
            m &= _compare(c, numeric(frame, c.column), c.thresholds[0])
        masks.append(m)
        names.append(st.name)
    if not masks:
        return np.full(n, None, dtype=object)
    return np.select(masks, np.array(names, dtype=object), default=None)


@dataclass
class Evaluation:
    """Membership after evaluation, its entry/exit events and per-segment counts."""

    membership: pd.DataFrame  # customer_id, segment, entered_at; by segment, then customer_id
    events: pd.DataFrame  # EVENT_COLUMNS
    stats: pd.DataFrame  # one row per segment (see `_STAT_COLUMNS`)
    skipped: dict[str, str]  # segment -> why it was not evaluated
    lifecycle: np.ndarray  # stage per frame row


_STAT_COLUMNS = (
    "segment",
    "size",
    "entered",
    "exited",
    "qualified",
    "suppressed",
    "superseded",
    *(f"excluded_{p}" for p in PURPOSES),
    *(f"unreachable_{p}" for p in PURPOSES),
)


def evaluate(
    defs: Definitions,
    frame: pd.DataFrame,
    previous: pd.DataFrame | None,
    thresholds: Thresholds,
    *,
    at: datetime,
    build_id: str,
    complete: bool = False,
) -> Evaluation:
    """Evaluate every segment for the customers of ``frame``.

    ``previous``: membership before (customer_id, segment, entered_at), used for hysteresis and changes;
    rows of customers outside ``frame`` are ignored unless ``complete`` (a full build), where they exit.
    """
    n = len(frame)
    ids = frame["customer_id"].astype(str).to_numpy(dtype=object)
    index = pd.Index(ids)
    if not index.is_unique:
        raise ContractError("customer_id", "each customer must appear once in the evaluation frame")
    missing_consent = [c for c in CONSENT_COLUMNS.values() if c not in frame.columns]
    if missing_consent:
        raise ContractError(
            "frame", f"consent columns missing (use segments.consent.with_consent): {missing_consent}"
        )
    at_ts = pd.Timestamp(at)
    at_ts = at_ts.tz_localize("UTC") if at_ts.tzinfo is None else at_ts.tz_convert("UTC")
    consent = {p: frame[c].to_numpy(dtype=bool) for p, c in CONSENT_COLUMNS.items()}
    prev = previous if previous is not None else pd.DataFrame(columns=list(MEMBERSHIP_COLUMNS))
    pos = index.get_indexer(prev["customer_id"].astype(str))
    prev_seg = pd.Categorical(prev["segment"].astype(str))
    seg_codes = np.asarray(prev_seg.codes)
    order = np.asarray(pc.sort_indices(pa.array(ids, pa.string())))  # members are written in id order
    prev_entered = pd.to_datetime(prev["entered_at"], utc=True)
    stage = stages(defs, frame)

    was: dict[str, np.ndarray] = {}
    since: dict[str, np.ndarray] = {}
    for seg in defs.all_segments:
        code = prev_seg.categories.get_loc(seg.name) if seg.name in prev_seg.categories else -2
        rows = np.flatnonzero((seg_codes == code) & (pos >= 0))
        m = np.zeros(n, dtype=bool)
        m[pos[rows]] = True
        s = np.full(n, at_ts.tz_convert(None).to_datetime64(), dtype="datetime64[us]")
        s[pos[rows]] = prev_entered.iloc[rows].dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
        was[seg.name], since[seg.name] = m, s

    skipped = {
        s.name: f"no column {sorted(s.columns - set(frame.columns))}"
        for s in defs.all_segments
        if s.columns - set(frame.columns)
    }
    for seg in defs.segments:
        unfrozen = [
            f"{seg.name}/{g}/{i}"
            for g, conds in groups(seg)
            for i, c in enumerate(conds)
            if c.percentile is not None and f"{seg.name}/{g}/{i}" not in thresholds.values
        ]
        if unfrozen and seg.name not in skipped:
            skipped[seg.name] = f"no frozen percentile threshold {unfrozen} (no build yet)"
    final: dict[str, np.ndarray] = {}
    eligible: dict[str, np.ndarray] = {}
    why: dict[str, list[tuple[np.ndarray, str]]] = {}  # exit reasons, in order of precedence (last first)
    stats: dict[str, dict[str, int]] = {}
    for seg in defs.all_segments:
        if seg.name in skipped:
            continue
        w = was[seg.name]
        st: dict[str, int] = {}
        reasons: list[tuple[np.ndarray, str]] = []
        if seg.stage is not None:
            ok = stage == seg.stage
            reasons.append((~ok, "lifecycle: stage is now {stage}"))
            eligible[seg.name] = ok
            why[seg.name] = reasons
            stats[seg.name] = {"qualified": int(ok.sum())}
            continue
        cond = np.ones(n, dtype=bool)
        for group, conds in groups(seg):
            if not conds:
                continue
            g = np.ones(n, dtype=bool) if group == "conditions" else np.zeros(n, dtype=bool)
            for i, c in enumerate(conds):
                enter, exit_ = absolute(seg, group, i, c, thresholds)
                v = numeric(frame, c.column)
                m = np.where(w, _compare(c, v, exit_), _compare(c, v, enter))
                if group == "conditions":
                    reasons.append((~m, f"condition: no longer {condition_text(c, exit_)}"))
                    g &= m
                else:
                    g |= m
            if group == "any_of":
                reasons.append((~g, "condition: no longer " + describe(seg, thresholds, leaving=True)[-1]))
            cond &= g
        if seg.lifecycle:
            ok = np.isin(stage, seg.lifecycle)
            reasons.append((~ok, "lifecycle: stage is now {stage}"))
            cond &= ok
        st["qualified"] = int(cond.sum())
        sup = np.zeros(n, dtype=bool)
        for s in seg.suppress_on:
            v = numeric(frame, s.feature)
            hit = (v <= s.days) & ~np.isnan(v)
            reasons.append((hit, f"suppressed: {s.event} within {s.days:g} days"))
            sup |= hit
        st["suppressed"] = int((cond & sup).sum())
        ok = cond & ~sup
        for p in PURPOSES:
            if p in seg.consent:
                lacks = ~consent[p]
                st[f"excluded_{p}"] = int((ok & lacks).sum())
                reasons.append((lacks, f"consent: no {p} consent"))
        for p in seg.consent:
            ok = ok & consent[p]
        eligible[seg.name] = ok
        why[seg.name] = reasons
        stats[seg.name] = st

    taken = np.zeros(n, dtype=bool)
    winner = np.full(n, None, dtype=object)
    offers = sorted(
        (s for s in defs.segments if s.offer_bearing and s.name in eligible), key=lambda s: -s.priority
    )
    for seg in defs.all_segments:
        if seg.name in eligible:
            final[seg.name] = eligible[seg.name]
    for seg in offers:
        e = eligible[seg.name]
        lost = e & taken
        stats[seg.name]["superseded"] = int(lost.sum())
        why[seg.name].append((lost, "superseded"))
        final[seg.name] = e & ~taken
        winner = np.where(final[seg.name], seg.name, winner)
        taken |= final[seg.name]

    members: list[tuple[np.ndarray, str, np.ndarray]] = []
    events: list[pd.DataFrame] = []
    rows: list[dict] = []
    for seg in defs.all_segments:
        if seg.name not in final:
            keep = order[was[seg.name][order]]
            members.append((ids[keep], seg.name, since[seg.name][keep]))
            continue
        f, w = final[seg.name], was[seg.name]
        keep = order[f[order]]
        members.append((ids[keep], seg.name, since[seg.name][keep]))
        entered, exited = np.flatnonzero(f & ~w), np.flatnonzero(w & ~f)
        entry_reason = "entered: " + (
            " and ".join(describe(seg, thresholds)) or f"lifecycle stage {seg.stage}"
        )
        if seg.suppress_on:
            entry_reason += "".join(f"; no {s.event} within {s.days:g} days" for s in seg.suppress_on)
        if len(entered):  # a frame per change only: live runs re-evaluate a few customers, most unchanged
            reasons = np.full(len(entered), entry_reason, dtype=object)
            events.append(_events(ids, entered, seg.name, "entry", reasons, consent, at_ts, build_id))
        if len(exited):
            reasons = _exit_reasons(why[seg.name], exited, stage, winner)
            events.append(_events(ids, exited, seg.name, "exit", reasons, consent, at_ts, build_id))
        st = stats[seg.name]
        rows.append(
            {
                "segment": seg.name,
                "size": len(keep),
                "entered": len(entered),
                "exited": len(exited),
                **{k: st.get(k, 0) for k in ("qualified", "suppressed", "superseded")},
                **{f"excluded_{p}": st.get(f"excluded_{p}", 0) for p in PURPOSES},
                **{
                    f"unreachable_{p}": int((f & ~consent[p]).sum()) if p in seg.purposes else 0
                    for p in PURPOSES
                },
            }
        )
    if complete:  # previous members of customers no longer known (e.g. merged away) leave
        gone = prev[pos < 0]
        members_gone = pd.DataFrame(
            {
                "customer_id": gone["customer_id"].astype(str).to_numpy(dtype=object),
                "segment": gone["segment"].to_numpy(dtype=object),
                "kind": "exit",
                "reason": "customer: no longer known (merged into another profile or removed)",
                "at": at_ts,
                "build_id": build_id,
                **{c: False for c in CONSENT_COLUMNS.values()},
            }
        )
        events.append(members_gone[list(EVENT_COLUMNS)])
        for r in rows:
            r["exited"] += int((gone["segment"] == r["segment"]).sum())
    membership = _members(
        np.concatenate([np.empty(0, object), *(m[0] for m in members)]),
        np.concatenate([np.empty(0, object), *(np.full(len(m[0]), m[1], dtype=object) for m in members)]),
        np.concatenate([np.empty(0, "datetime64[us]"), *(m[2] for m in members)]),
    )
    ev = (
        pd.concat([e for e in events if len(e)], ignore_index=True)
        if any(len(e) for e in events)
        else _empty_events()
    )
    return Evaluation(membership, ev, pd.DataFrame(rows, columns=list(_STAT_COLUMNS)), skipped, stage)


def _members(ids: np.ndarray, segments: np.ndarray, entered: np.ndarray) -> pd.DataFrame:
    """One membership frame (one row per customer and segment), built once per evaluation."""
    return pd.DataFrame(
        {
            "customer_id": ids.astype(object),
            "segment": pd.Series(segments, dtype=object),
            "entered_at": pd.to_datetime(entered.astype("datetime64[us]")).tz_localize("UTC"),
        }
    )


def _empty_events() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in EVENT_COLUMNS})
    out["at"] = pd.Series(dtype="datetime64[us, UTC]")
    for c in CONSENT_COLUMNS.values():
        out[c] = pd.Series(dtype=bool)
    return out


def _events(
    ids: np.ndarray,
    rows: np.ndarray,
    segment: str,
    kind: str,
    reasons: np.ndarray,
    consent: dict[str, np.ndarray],
    at: pd.Timestamp,
    build_id: str,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids[rows],
            "segment": segment,
            "kind": kind,
            "reason": reasons,
            "at": pd.Series(
                np.full(len(rows), at.tz_convert(None).to_datetime64(), dtype="datetime64[us]")
            ).dt.tz_localize("UTC"),
            "build_id": build_id,
            **{CONSENT_COLUMNS[p]: consent[p][rows] for p in PURPOSES},
        },
        columns=list(EVENT_COLUMNS),
    )


def _exit_reasons(
    reasons: list[tuple[np.ndarray, str]], rows: np.ndarray, stage: np.ndarray, winner: np.ndarray
) -> np.ndarray:
    """Per exiting row, the reason of highest precedence: superseded, consent, suppressed, lifecycle,
    then the first failing condition."""
    out = np.full(len(rows), "condition", dtype=object)
    if not len(rows):
        return out
    rank = {"superseded": 0, "consent": 1, "suppressed": 2, "lifecycle": 3, "condition": 4}
    ordered = sorted(reasons, key=lambda r: rank[r[1].split(":")[0]])
    done = np.zeros(len(rows), dtype=bool)
    for mask, text in ordered:
        hit = mask[rows] & ~done
        if not hit.any():
            continue
        if text == "superseded":
            out[hit] = np.char.add("superseded by ", winner[rows[hit]].astype(str)).astype(object)
        elif "{stage}" in text:
            out[hit] = [text.format(stage=s) for s in stage[rows[hit]]]
        else:
            out[hit] = text
        done |= hit
    return out
