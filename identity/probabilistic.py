"""Probabilistic links for the resolver: `AnonymousMatcher` on anonymous profiles and `RecordMatcher` on the
`records` table, turned into extra edges (EXTRA_EDGE_COLUMNS) with their probability and evidence JSON.

Both matchers train on labels the deterministic graph provides (``identity_map`` here is a deterministic
map computed in memory, never written). A matcher that cannot train (too few labelled pairs, no comparable
columns) is skipped and the reason kept in ``notes``: resolution falls back to deterministic for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pandas as pd
import pyarrow as pa

from contract.errors import ContractError
from contract.workspace import Workspace
from identity.config import MatchConfig
from identity.graph import EXTRA_EDGE_COLUMNS

if TYPE_CHECKING:
    import duckdb

    from identity.match.anonymous import AnonymousMatcher


@dataclass(frozen=True)
class MatchEdges:
    edges: pd.DataFrame  # EXTRA_EDGE_COLUMNS
    notes: tuple[str, ...]
    anonymous: int  # edges from AnonymousMatcher
    records: int  # edges from RecordMatcher


def empty_edges() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=float if c == "probability" else object) for c in EXTRA_EDGE_COLUMNS}
    )


def gated_anonymous_matcher(
    con: duckdb.DuckDBPyConnection,
    threshold: float = 0.8,
    *,
    mode: Literal["auto", "on"] = "auto",
    precision_target: float = 0.99,
) -> tuple[AnonymousMatcher | None, str]:
    """An AnonymousMatcher trained on ``con`` (`events`, `identity_map`, `identity_guard_log`), or None and
    why ("skipped: ..." when it cannot train; "off: ..." when, in 'auto', its held-out precision at
    ``threshold`` misses ``precision_target``). The resolver and the live engine gate alike."""
    from identity.match.anonymous import AnonymousMatcher

    try:
        matcher = AnonymousMatcher(threshold=threshold).fit(con)
    except ContractError as exc:
        return None, f"skipped: {exc}"
    precision, n_held = matcher.holdout_precision()
    if mode == "auto" and not (n_held and precision >= precision_target):
        return None, (
            f"off: held-out precision {precision:.3f} over {n_held} pairs at p >= {threshold} is below the "
            f"target {precision_target}"
        )
    return matcher, f"on: held-out precision {precision:.3f} over {n_held} pairs"


def anonymous_edges(
    ws: Workspace,
    identity_map: pa.Table,
    guard_log: pa.Table,
    threshold: float = 0.8,
    *,
    mode: Literal["auto", "on", "off"] = "on",
    precision_target: float = 0.99,
) -> tuple[pd.DataFrame, str]:
    """AnonymousMatcher links of ``ws``'s events against a (deterministic) ``identity_map``; (edges, note).

    ``mode`` 'auto' keeps the links only when the matcher's held-out precision at ``threshold`` meets
    ``precision_target``; 'off' skips the matcher."""
    if mode == "off":
        return empty_edges(), "anonymous matcher off"
    with ws.connect("events") as con:
        con.register("_pm_map", identity_map)
        con.register("_pm_guards", guard_log)
        con.execute("CREATE TEMP TABLE identity_map AS SELECT * FROM _pm_map")
        con.execute("CREATE TEMP TABLE identity_guard_log AS SELECT * FROM _pm_guards")
        matcher, why = gated_anonymous_matcher(con, threshold, mode=mode, precision_target=precision_target)
        if matcher is None:
            forced = " (--anonymous on forces it)" if why.startswith("off:") else ""
            return empty_edges(), f"anonymous matcher {why}{forced}"
        edges = matcher.links(con)
    labels = matcher.n_labels_
    return edges, (
        f"anonymous matcher: trained on {labels['matches']} match / {labels['non_matches']} non-match pairs, "
        f"{matcher.n_candidates_} candidates, {len(edges)} links at p >= {threshold}"
    )


def record_edges(
    ws: Workspace,
    threshold: float | Literal["auto"] = "auto",
    *,
    require_labels: bool = True,
    precision_target: float = 0.99,
    fallback: float = 0.9,
) -> tuple[pd.DataFrame, str]:
    """RecordMatcher links between the workspace's records (pairs it linked that no shared user_id or
    loyalty_id already settles); (edges, note). With ``require_labels`` it is skipped unless supervised.
    ``threshold`` 'auto' is chosen on held-out labelled pairs under ``precision_target``."""
    if not ws.exists("records"):
        return empty_edges(), "record matcher skipped: no records"
    from identity.match import RecordMatcher

    # extra_ids become comparisons named "id:<key>", which LightGBM refuses as feature names: left out
    records = ws.read("records").to_pandas().drop(columns=["extra_ids"], errors="ignore")
    matcher = RecordMatcher(
        threshold=threshold, precision_target=precision_target, fallback_threshold=fallback
    )
    try:
        matcher.fit(records)
    except ContractError as exc:
        return empty_edges(), f"record matcher skipped: {exc}"
    labels = matcher.n_labels_
    if require_labels and matcher.mode_ != "supervised":
        return empty_edges(), (
            f"record matcher skipped: too few deterministically labelled record pairs ({labels['matches']} "
            f"matches, {labels['non_matches']} non-matches; need {matcher.min_labels} of each)"
        )
    pairs = matcher.link(records).pairs
    pairs = pairs[pairs["linked"].to_numpy(bool) & ~pairs["deterministic"].to_numpy(bool)]
    wcols = [c for c in pairs.columns if c.startswith("w_")]
    weights = pairs[wcols].astype(float).round(3).rename(columns=lambda c: c[2:])
    detail = weights.assign(blocking_rule=pairs["blocking_rule"].to_numpy(object))
    body = detail.to_json(orient="records", lines=True).splitlines() if len(detail) else []
    evidence = [f'{{"method": "record_match", "mode": "{matcher.mode_}", "detail": {b}}}' for b in body]
    edges = pd.DataFrame(
        {
            "left_type": "record",
            "left_value": (pairs["source_l"] + ":" + pairs["record_id_l"]).to_numpy(object),
            "right_type": "record",
            "right_value": (pairs["source_r"] + ":" + pairs["record_id_r"]).to_numpy(object),
            "probability": pairs["match_probability"].astype(float).to_numpy(),
            "evidence": pd.Series(evidence, dtype=object).to_numpy(object),
        }
    )
    return edges, (
        f"record matcher ({matcher.mode_}): trained on {labels['matches']} match / {labels['non_matches']} "
        f"non-match pairs (+{labels.get('household_non_matches', 0)} household non-matches), {len(edges)} "
        f"links at {matcher.threshold_choice_}"
    )


def match_edges(
    ws: Workspace,
    identity_map: pa.Table,
    guard_log: pa.Table,
    config: MatchConfig | None = None,
) -> MatchEdges:
    """Both matchers' edges for ``ws`` given its deterministic map; skipped matchers are explained in notes."""
    cfg = config or MatchConfig()
    anon, anon_note = anonymous_edges(
        ws,
        identity_map,
        guard_log,
        cfg.anonymous_threshold,
        mode=cfg.anonymous,
        precision_target=cfg.precision_target,
    )
    rec, rec_note = record_edges(
        ws, cfg.record_threshold, precision_target=cfg.precision_target, fallback=cfg.record_fallback
    )
    frames = [f for f in (anon, rec) if len(f)]
    edges = pd.concat(frames, ignore_index=True) if frames else empty_edges()
    return MatchEdges(edges[list(EXTRA_EDGE_COLUMNS)], (anon_note, rec_note), len(anon), len(rec))
