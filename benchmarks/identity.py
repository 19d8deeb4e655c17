"""Identity resolution against the simulated brand's truth: deterministic, + anonymous matching, + records.

Simulates a brand into a temporary workspace and, for two deterministic configurations ("before": no guarded
email/phone links from events without a login, the baseline; "after": the defaults), runs `identity.IdentityResolver(ws).resolve()`, then
`AnonymousMatcher` (anonymous profiles -> known customers) and `RecordMatcher` (records -> clusters), joining
their links onto the deterministic profiles here (connected components; a merged profile that would hold two
user_ids keeps its deterministic split); last, the resolver's own probabilistic path
(``resolve(probabilistic=True)``). Every stage is scored against ``<ws>/truth/identifiers.parquet``: pairwise
and B-cubed precision/recall/F1, over-merge rate, B-cubed by identity state and pairwise by link type, over
all identifiers and over the linkable ones, and two ways for identifiers the truth gives several owners:
"first owner" (counted as its alphabetically first person) and "any owner" (correct in a cluster of any of
its owners). The headline table shows the final stages on linkable identifiers with any-owner scoring, with
over-merge also among clusters of two or more identifiers, next to an **evidence ceiling**: every identifier
pair that co-occurs in one event or record, linked when the truth says it is one person (an oracle guard),
alone and with perfect record linkage; what no rule over this evidence can exceed.

    .venv/bin/python -m benchmarks.identity --customers 20000 --days 90
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

#: Identifier class per type, ordered so that a pair's link type is the class of its stronger side.
CLASSES: dict[str, int] = {
    "device_id": 0,
    "anonymous_id": 0,
    "user_id": 1,
    "loyalty_id": 1,
    "email_sha256": 2,
    "phone_sha256": 2,
    "record": 3,
}
LINK_TYPES: tuple[str, ...] = ("device", "account", "email", "record")
STATES: tuple[str, ...] = ("anonymous", "logged-out", "authenticated")
TARGET_F1, TARGET_OVERMERGE = 0.97, 0.005


@dataclass(frozen=True)
class Scores:
    pair_p: float
    pair_r: float
    pair_f1: float
    b3_p: float
    b3_r: float
    b3_f1: float
    over_merge: float  # share of predicted clusters holding two or more people
    over_merge_multi: float  # the same among clusters of two or more identifiers
    clusters: int
    identifiers: int
    by_state: dict[str, tuple[float, float, float]]  # B-cubed P, R, F1
    by_link: dict[str, tuple[float, float]]  # pairwise P, R


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _pair_counts(keys: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Pairs inside groups ``keys``, by (class, class): a 4x4 upper-triangular matrix."""
    _, g = np.unique(keys, return_inverse=True)
    m = np.zeros((g.max() + 1 if len(g) else 0, len(LINK_TYPES)), dtype=np.float64)
    np.add.at(m, (g, cls), 1.0)
    out = m.T @ m
    out[np.diag_indices_from(out)] = (m * (m - 1) / 2).sum(axis=0)
    return np.triu(out)


def score(pred: np.ndarray, true: np.ndarray, cls: np.ndarray, state: np.ndarray) -> Scores:
    """Scores of predicted cluster labels against true person labels (int arrays, one row per identifier)."""
    both = pred.astype(np.int64) * (int(true.max()) + 1) + true
    tp, pp, tt = _pair_counts(both, cls), _pair_counts(pred, cls), _pair_counts(true, cls)
    link = np.maximum.outer(np.arange(4), np.arange(4))
    by_link = {
        name: (
            float(tp[link == k].sum() / max(pp[link == k].sum(), 1)),
            float(tp[link == k].sum() / max(tt[link == k].sum(), 1)),
        )
        for k, name in enumerate(LINK_TYPES)
    }
    p, r = tp.sum() / max(pp.sum(), 1), tp.sum() / max(tt.sum(), 1)
    frame = pd.DataFrame({"c": pred, "t": true})
    n_ct = frame.groupby(["c", "t"])["c"].transform("size").to_numpy()
    n_c = frame.groupby("c")["c"].transform("size").to_numpy()
    n_t = frame.groupby("t")["t"].transform("size").to_numpy()
    bp, br = n_ct / n_c, n_ct / n_t
    by_state = {}
    for s in STATES:
        m = state == s
        sp, sr = (float(bp[m].mean()), float(br[m].mean())) if m.any() else (float("nan"), float("nan"))
        by_state[s] = (sp, sr, _f1(sp, sr))
    people = frame.groupby("c")["t"].nunique()
    multi = (frame.groupby("c")["t"].size() > 1).to_numpy()
    b3p, b3r = float(bp.mean()), float(br.mean())
    return Scores(
        float(p), float(r), _f1(p, r), b3p, b3r, _f1(b3p, b3r), float((people > 1).mean()),
        float((people.to_numpy()[multi] > 1).mean()) if multi.any() else 0.0,
        len(people), len(pred), by_state, by_link,
    )  # fmt: skip


def combine(identity_map: pd.DataFrame, edges: pd.DataFrame) -> np.ndarray:
    """Cluster label per identity_map row after adding ``edges`` (left/right type and value) between
    deterministic profiles; a merged component holding two user_id profiles keeps its deterministic split."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    cust, base = np.unique(identity_map["customer_id"].to_numpy(object), return_inverse=True)
    if not len(edges):
        return base
    key = pd.Series(
        base, index=pd.MultiIndex.from_frame(identity_map[["identifier_type", "identifier_value"]])
    )
    key = key[~key.index.duplicated()]
    a = key.reindex(pd.MultiIndex.from_arrays([edges["left_type"], edges["left_value"]])).to_numpy()
    b = key.reindex(pd.MultiIndex.from_arrays([edges["right_type"], edges["right_value"]])).to_numpy()
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok].astype(np.int64), b[ok].astype(np.int64)
    n = len(cust)
    _, comp = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)
    users = identity_map.loc[identity_map["identifier_type"] == "user_id", "customer_id"]
    has_user = np.isin(cust, users.to_numpy(object))
    conflicted = np.bincount(comp, weights=has_user, minlength=comp.max() + 1) > 1
    label = np.where(conflicted[comp], n + np.arange(n), comp)  # conflicted: back to own profile
    return label[base]


def record_edges(ws_root: Path, threshold: float | str = "auto") -> tuple[pd.DataFrame, float, str]:
    """RecordMatcher over the workspace's records: edges record -> first record of its cluster, seconds, and
    a note on its mode, labelled pairs and threshold ('auto': chosen on held-out labelled pairs)."""
    from contract.workspace import Workspace
    from identity.match import RecordMatcher

    t0 = time.perf_counter()
    # extra_ids become comparisons named "id:<key>", a name LightGBM refuses (JSON special character):
    # left out here until RecordMatcher sanitises feature names
    records = Workspace(ws_root).read("records").to_pandas().drop(columns=["extra_ids"])
    matcher = RecordMatcher(threshold=threshold)  # type: ignore[arg-type]
    clusters = matcher.link(records).clusters
    node = clusters["source"] + ":" + clusters["record_id"]
    first = node.groupby(clusters["customer_id"]).transform("first")
    keep = node != first
    edges = pd.DataFrame(
        {
            "left_type": "record",
            "left_value": node[keep].to_numpy(object),
            "right_type": "record",
            "right_value": first[keep].to_numpy(object),
        }
    )
    labels = ", ".join(f"{v} {k}" for k, v in matcher.n_labels_.items())
    return (
        edges,
        time.perf_counter() - t0,
        (f"record matcher ({matcher.mode_}): labelled pairs {labels}; {matcher.threshold_choice_}"),
    )


def ceiling_labels(ws_root: Path, truth: pd.DataFrame, records: bool) -> np.ndarray:
    """Evidence ceiling: components of the identifier pairs co-occurring in one event or record whose two ends
    the truth gives one person (an oracle guard); with ``records`` also every record linked to its person's."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from contract.workspace import Workspace
    from identity.graph import _ID_COLUMNS, _RECORD_ID_COLUMNS

    ws = Workspace(ws_root)
    with ws.connect("events", "records") as con:
        rec = (
            f"""UNION ALL SELECT rid, t, v FROM (UNPIVOT (SELECT -row_number() OVER () AS rid,
                {", ".join(_RECORD_ID_COLUMNS)}, source || ':' || record_id AS record FROM records)
                ON {", ".join(_RECORD_ID_COLUMNS)}, record INTO NAME t VALUE v)"""
            if ws.exists("records")
            else ""
        )
        pairs = con.sql(f"""
            WITH o AS (
                SELECT rid, t, v FROM (UNPIVOT (SELECT row_number() OVER () AS rid, {", ".join(_ID_COLUMNS)}
                    FROM events) ON {", ".join(_ID_COLUMNS)} INTO NAME t VALUE v) {rec})
            SELECT DISTINCT x.t AS ta, x.v AS va, y.t AS tb, y.v AS vb
            FROM o x JOIN o y ON x.rid = y.rid AND (x.t < y.t OR (x.t = y.t AND x.v < y.v))""").df()
    node = pd.Series(
        np.arange(len(truth)), index=pd.MultiIndex.from_frame(truth[["identifier_type", "identifier_value"]])
    )
    node = node[~node.index.duplicated()]
    a = node.reindex(pd.MultiIndex.from_arrays([pairs["ta"], pairs["va"]])).to_numpy()
    b = node.reindex(pd.MultiIndex.from_arrays([pairs["tb"], pairs["vb"]])).to_numpy()
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok].astype(np.int64), b[ok].astype(np.int64)
    person = truth["person_id"].to_numpy(object)
    pure = person[a] == person[b]
    a, b = a[pure], b[pure]
    if records:
        idx = np.flatnonzero(truth["identifier_type"].to_numpy(object) == "record")
        first = pd.Series(idx).groupby(person[idx]).transform("first").to_numpy()
        a, b = np.concatenate([a, idx]), np.concatenate([b, first])
    n = len(truth)
    return connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)), directed=False)[1]


def truth_frame(ws_root: Path, identity_map: pd.DataFrame) -> pd.DataFrame:
    """One row per mapped identifier: person (a shared identifier: its first person), owners (every person
    the truth lists for it), class, state, linkable."""
    import duckdb

    from contract.workspace import Workspace

    ti = pd.read_parquet(ws_root / "truth" / "identifiers.parquet")
    persons = pd.read_parquet(ws_root / "truth" / "persons.parquet", columns=["person_id", "has_account"])
    ti = ti.sort_values(["identifier_type", "identifier_value", "person_id"])
    owners = ti.groupby(["identifier_type", "identifier_value"], sort=False)["person_id"].agg(tuple)
    ti = ti.drop_duplicates(["identifier_type", "identifier_value"])
    ti = ti.merge(owners.rename("owners").reset_index(), on=["identifier_type", "identifier_value"])
    df = identity_map.merge(
        ti[["identifier_type", "identifier_value", "person_id", "shared", "owners"]],
        on=["identifier_type", "identifier_value"],
        how="left",
    )
    with Workspace(ws_root).connect("events") as con:
        con.register("m", identity_map[["identifier_type", "identifier_value"]])
        seen = con.sql("""
            WITH ids AS (
                SELECT 'device_id' AS t, device_id AS v, user_id, device_id AS dev FROM events WHERE device_id IS NOT NULL
                UNION ALL
                SELECT 'anonymous_id', anonymous_id, user_id, device_id FROM events WHERE anonymous_id IS NOT NULL)
            SELECT t AS identifier_type, v AS identifier_value, bool_or(user_id IS NOT NULL) AS authenticated,
                   count(*) = 1 AND bool_and(dev IS NULL) AS one_off
            FROM ids GROUP BY ALL""").df()
    del duckdb
    df = df.merge(seen, on=["identifier_type", "identifier_value"], how="left")
    weak = df["identifier_type"].isin(["device_id", "anonymous_id"])
    account_people = set(ti.loc[ti["identifier_type"] == "user_id", "person_id"]) | set(
        persons.loc[persons["has_account"], "person_id"]
    )
    df["state"] = np.where(
        ~weak | df["authenticated"].astype("boolean").fillna(False).to_numpy(bool),
        "authenticated",
        np.where(df["person_id"].isin(account_people), "logged-out", "anonymous"),
    )
    df["linkable"] = ~df["one_off"].astype("boolean").fillna(False).to_numpy(bool)
    df["cls"] = df["identifier_type"].map(CLASSES).astype(np.int64)
    missing = df["person_id"].isna()
    df.loc[missing, "person_id"] = "unknown:" + df.loc[missing, "identifier_value"]
    df["owners"] = [
        o if isinstance(o, tuple) else (p,) for o, p in zip(df["owners"], df["person_id"], strict=True)
    ]
    return df


def any_owner_persons(truth: pd.DataFrame, labels: np.ndarray) -> np.ndarray:
    """Person per identifier where a truly shared one counts as its predicted cluster's person when that
    person is any of its owners (the cluster's person: the most frequent among its unshared identifiers)."""
    person = truth["person_id"].to_numpy(object).copy()
    shared = truth["owners"].map(len).to_numpy() > 1
    if not shared.any():
        return person
    own = pd.DataFrame({"c": labels[~shared], "p": person[~shared]})
    top = own.groupby(["c", "p"]).size().rename("n").reset_index()
    top = top.sort_values(["c", "n", "p"], ascending=[True, False, True]).drop_duplicates("c")
    cand = top.set_index("c")["p"].reindex(labels[shared]).to_numpy(object)
    owners = truth["owners"].to_numpy(object)[shared]
    ok = np.array([c in o for c, o in zip(cand, owners, strict=True)], dtype=bool)
    idx = np.flatnonzero(shared)[ok]
    person[idx] = cand[ok]
    return person


def _evaluate(
    truth: pd.DataFrame, labels: np.ndarray, linkable_only: bool, any_owner: bool = False
) -> Scores:
    m = truth["linkable"].to_numpy() if linkable_only else np.ones(len(truth), bool)
    person = any_owner_persons(truth, labels) if any_owner else truth["person_id"].to_numpy(object)
    true = pd.factorize(person)[0]
    return score(labels[m], true[m], truth["cls"].to_numpy()[m], truth["state"].to_numpy()[m])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.8, help="AnonymousMatcher link threshold")
    parser.add_argument("--no-records", action="store_true", help="skip RecordMatcher")
    parser.add_argument(
        "--no-resolver", action="store_true", help="skip IdentityResolver.resolve(probabilistic=True)"
    )
    args = parser.parse_args(argv)
    from contract.errors import ContractError
    from contract.workspace import Workspace
    from identity import IdentityResolver, StitchConfig
    from identity.match.anonymous import AnonymousMatcher
    from simulator.brand import simulate_brand
    from simulator.config import SimConfig

    console = Console(width=190)
    times: dict[str, float] = {}
    notes: list[str] = []
    stages: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="cxi-bench-identity-") as tmp:
        ws = Workspace(Path(tmp) / "ws")
        t0 = time.perf_counter()
        console.print(
            str(simulate_brand(ws, SimConfig(customers=args.customers, days=args.days, seed=args.seed)))
        )
        times["simulate"] = time.perf_counter() - t0
        rec = rec05 = None
        runs = {"before (no guarded links)": StitchConfig(guarded_links=()), "after": StitchConfig()}
        truth = None
        for run, config in runs.items():
            t1 = time.perf_counter()
            console.print(f"{run}: {IdentityResolver(ws, config).resolve()}")
            times[f"{run}: deterministic resolve"] = time.perf_counter() - t1
            imap = ws.read("identity_map").to_pandas()
            if truth is None:
                truth = truth_frame(ws.root, imap)
            order = pd.MultiIndex.from_frame(truth[["identifier_type", "identifier_value"]])
            imap = imap.set_index(["identifier_type", "identifier_value"]).reindex(order).reset_index()
            t2 = time.perf_counter()
            anon = pd.DataFrame(columns=["left_type", "left_value", "right_type", "right_value"])
            try:
                with ws.connect("events", "identity_map", "identity_guard_log") as con:
                    matcher = AnonymousMatcher(threshold=args.threshold).fit(con)
                    anon = matcher.links(con)
                notes.append(
                    f"{run}: anonymous matcher: {matcher.n_labels_['matches']} match / "
                    f"{matcher.n_labels_['non_matches']} non-match labelled pairs, {matcher.n_candidates_} "
                    f"candidates, {len(anon)} links"
                )
            except ContractError as exc:
                notes.append(f"{run}: anonymous matcher not trained: {exc}")
            times[f"{run}: anonymous match"] = time.perf_counter() - t2
            if rec is None:
                rec = anon.iloc[:0]
                if not args.no_records and ws.exists("records"):
                    rec05, times["record match (p >= 0.5)"], note = record_edges(ws.root, 0.5)
                    notes.append(f"{note}; {len(rec05)} record links")
                    rec, times["record match (auto)"], note = record_edges(ws.root)
                    notes.append(f"{note}; {len(rec)} record links")
            stages[f"{run}: deterministic"] = combine(imap, anon.iloc[:0])
            stages[f"{run}: + anonymous matching"] = combine(imap, anon)
            if rec05 is not None:
                both = pd.concat([anon, rec05], ignore_index=True)
                stages[f"{run}: + records at p >= 0.5 (old default)"] = combine(imap, both)
            stages[f"{run}: + records"] = combine(imap, pd.concat([anon, rec], ignore_index=True))
        if not args.no_resolver:  # the same matchers wired through the resolver (`resolve --probabilistic`)
            t3 = time.perf_counter()
            report = IdentityResolver(ws).resolve(probabilistic=True)
            times["after: resolver, probabilistic"] = time.perf_counter() - t3
            notes.extend(f"resolver: {n}" for n in report.notes)
            pm = ws.read("identity_map").to_pandas().set_index(["identifier_type", "identifier_value"])
            cust = pm["customer_id"].reindex(order).to_numpy(object)
            stages["after: resolver --probabilistic"] = pd.factorize(cust)[0]
        for with_records in (False, True):
            name = "evidence ceiling: oracle-guarded co-occurrence" + (
                " + perfect records" if with_records else ""
            )
            stages[name] = ceiling_labels(ws.root, truth, with_records)
        guards = ws.read("identity_guard_log").to_pandas()
        notes.append(f"household guard firings (after): {int((guards['guard'] == 'household').sum())}")
    assert truth is not None
    _print(console, truth, stages, times, notes)


def _print(
    console: Console,
    truth: pd.DataFrame,
    stages: dict[str, np.ndarray],
    times: dict[str, float],
    notes: list[str],
) -> None:
    unl = truth.loc[~truth["linkable"], "identifier_type"].value_counts().to_dict()
    console.print(
        f"{len(truth)} identifiers, {truth['person_id'].nunique()} people; unlinkable (one-off anonymous ids "
        f"with no device, e.g. anonymous store receipts): {sum(unl.values())}; shared in truth: "
        f"{int(truth['shared'].astype('boolean').fillna(False).sum())}"
    )
    for line in notes:
        console.print(line)
    head = Table(
        title=f"Headline: linkable identifiers, any-owner scoring (targets: B-cubed F1 >= {TARGET_F1}, "
        f"over-merge < {TARGET_OVERMERGE:.1%})"
    )
    for col in ("stage", "B3 P", "B3 R", "B3 F1", "over-merge", "over-merge (size >= 2)", "clusters"):
        head.add_column(col, justify="left" if col == "stage" else "right")
    for name, labels in stages.items():
        if name.endswith("anonymous matching"):
            continue
        sc = _evaluate(truth, labels, True, True)
        head.add_row(
            name, f"{sc.b3_p:.4f}", f"{sc.b3_r:.4f}", f"{sc.b3_f1:.4f}", f"{sc.over_merge:.2%}",
            f"{sc.over_merge_multi:.2%}", str(sc.clusters),
        )  # fmt: skip
    console.print(head)
    base_f1: dict[str, float] = {}
    main = Table(
        title=f"Identity vs truth (targets: B-cubed F1 >= {TARGET_F1}, over-merge < {TARGET_OVERMERGE:.1%})"
    )
    for col in ("stage", "identifiers / scoring", "pair P", "pair R", "pair F1", "B3 P", "B3 R", "B3 F1", "B3 F1 / base",
                "over-merge", "om >= 2", "clusters"):  # fmt: skip
        main.add_column(col, justify="left" if col in ("stage", "identifiers / scoring") else "right")
    by_state = Table(title="B-cubed P / R / F1 by identity state (all identifiers, any-owner scoring)")
    by_link = Table(title="Pairwise P / R by link type (all identifiers, any-owner scoring)")
    by_state.add_column("stage")
    by_link.add_column("stage")
    for s in STATES:
        by_state.add_column(f"{s} ({int((truth['state'] == s).sum())})", justify="right")
    for k in LINK_TYPES:
        by_link.add_column(k, justify="right")
    for any_owner, linkable in ((False, False), (True, False), (False, True), (True, True)):
        subset = ("linkable" if linkable else "all") + (", any owner" if any_owner else ", first owner")
        for name, labels in stages.items():
            sc = _evaluate(truth, labels, linkable, any_owner)
            base_f1.setdefault(subset, sc.b3_f1)
            main.add_row(
                name, subset, f"{sc.pair_p:.4f}", f"{sc.pair_r:.4f}", f"{sc.pair_f1:.4f}", f"{sc.b3_p:.4f}",
                f"{sc.b3_r:.4f}", f"{sc.b3_f1:.4f}", f"{sc.b3_f1 / base_f1[subset]:.3f}x",
                f"{sc.over_merge:.2%}", f"{sc.over_merge_multi:.2%}", str(sc.clusters),
            )  # fmt: skip
            if not linkable and any_owner:
                by_state.add_row(name, *(" / ".join(f"{v:.3f}" for v in sc.by_state[s]) for s in STATES))
                by_link.add_row(name, *(" / ".join(f"{v:.3f}" for v in sc.by_link[k]) for k in LINK_TYPES))
    console.print(main, by_state, by_link)
    timing = Table(title="Wall time (s)")
    timing.add_column("step")
    timing.add_column("seconds", justify="right")
    for k, v in times.items():
        timing.add_row(k, f"{v:.1f}")
    console.print(timing)


if __name__ == "__main__":
    main()
