"""Profile fragments, blocking and comparison features for anonymous matching, all DuckDB SQL.

A *fragment* is what one browser or device shows of a customer: the events of one resolved customer on one
device_id (or, without a device, one anonymous_id). Anonymous-only customers are single fragments; known
customers with several devices give fragments whose pairs are labelled by the deterministic graph (same
customer: match; two customers holding different user_ids: non-match).

Candidate pairs come from blocking on generic web/app-log keys (a device seen in two profiles; a shared IP
/24 prefix on the same day; a shared IP prefix and user-agent family); blocks larger than ``max_block`` (NAT,
carrier gateways, offices) are skipped. Comparisons: IP overlap, shared IP-hours, user-agent equality,
active-day overlap, cosine similarity of category, hour-of-day and channel vectors, sizes.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

#: Identifier types that make a customer "known" (anything beyond a cookie or a device).
WEAK_TYPES: tuple[str, ...] = ("device_id", "anonymous_id")
#: Comparison features, in model order.
FEATURES: tuple[str, ...] = (
    "same_device",
    "ip_prefixes_shared",
    "ip_jaccard",
    "ip_days_shared",
    "ip_hours_shared",
    "ua_equal",
    "day_jaccard",
    "span_overlap",
    "category_cosine",
    "hour_cosine",
    "channel_cosine",
    "log_events_min",
    "log_events_max",
)


#: What one event shows of its fragment and blocking keys, over an events view (SQL select list): the
#: fragment (device, else cookie), UTC day and hour, user-agent family (version numbers dropped) and IP prefix
#: (/24 of IPv4, first four groups of IPv6). Shared by `build_fragments` and the live matcher's event table.
FRAGMENT_COLUMNS_SQL = """
               coalesce(device_id, anonymous_id) AS frag,
               CASE WHEN device_id IS NOT NULL THEN 'device_id' ELSE 'anonymous_id' END AS frag_type,
               epoch(occurred_at)::BIGINT AS ts,
               date_trunc('day', occurred_at) AS day,
               hour(occurred_at) AS hr,
               channel, category,
               nullif(trim(regexp_replace(coalesce(user_agent, ''), '[0-9]+([._][0-9]+)*', '', 'g')), '')
                   AS ua_family,
               CASE WHEN ip LIKE '%.%.%.%' THEN regexp_extract(ip, '^([0-9]+\\.[0-9]+\\.[0-9]+)\\.', 1)
                    WHEN ip LIKE '%:%' THEN array_to_string(string_split(ip, ':')[1:4], ':') END AS ip_prefix"""


def build_fragments(con: duckdb.DuckDBPyConnection, events_view: str) -> int:
    """Create temp tables ``_am_frag`` (one row per fragment) and ``_am_ev`` (its events); returns the count.

    ``events_view`` must hold the events columns plus ``customer_id``; ``identity_map`` must be on ``con``.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _am_raw AS
        SELECT customer_id, {FRAGMENT_COLUMNS_SQL}
        FROM {events_view}
        WHERE customer_id IS NOT NULL AND (device_id IS NOT NULL OR anonymous_id IS NOT NULL)""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _am_cust AS
        SELECT customer_id,
               bool_or(identifier_type NOT IN ({", ".join(repr(t) for t in WEAK_TYPES)})) AS known,
               bool_or(identifier_type = 'user_id') AS has_user,
               coalesce(min(identifier_value) FILTER (identifier_type = 'user_id'),
                        min(identifier_type || chr(31) || identifier_value)
                            FILTER (identifier_type NOT IN ({", ".join(repr(t) for t in WEAK_TYPES)}))) AS anchor
        FROM identity_map GROUP BY customer_id""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _am_frag AS
        WITH f AS (
            SELECT customer_id, frag, min(frag_type) AS frag_type, count(*) AS n_events,
                   count(DISTINCT day) AS n_days, min(ts) AS first_ts, max(ts) AS last_ts,
                   mode(ua_family) AS ua_family
            FROM _am_raw GROUP BY customer_id, frag)
        SELECT row_number() OVER (ORDER BY f.customer_id, f.frag) - 1 AS fid, f.*,
               coalesce(c.known, false) AS known, coalesce(c.has_user, false) AS has_user, c.anchor
        FROM f LEFT JOIN _am_cust c USING (customer_id)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _am_ev AS
        SELECT f.fid, r.* EXCLUDE (customer_id, frag, frag_type)
        FROM _am_raw r JOIN _am_frag f USING (customer_id, frag)""")
    return int(con.execute("SELECT count(*) FROM _am_frag").fetchone()[0])  # type: ignore[index]


#: Blocking keys of an event (rule, SQL over its FRAGMENT_COLUMNS_SQL columns): the device (or cookie) seen in
#: two profiles; a shared IP prefix on the same day; a shared IP prefix and user-agent family.
BLOCK_KEYS: tuple[tuple[str, str], ...] = (
    ("device", "frag"),
    ("ip_day", "ip_prefix || '|' || day::VARCHAR"),
    ("ip_ua", "ip_prefix || '|' || ua_family"),
)


def block_keys_sql(source: str, id_column: str) -> str:
    """Distinct (``id_column`` AS fid, rule, k) of every row of ``source`` (a table or subquery holding the
    FRAGMENT_COLUMNS_SQL columns), one row per blocking key it holds."""
    return " UNION ALL ".join(
        f"SELECT DISTINCT {id_column} AS fid, '{rule}' AS rule, {expr} AS k FROM {source} AS s "
        f"WHERE {expr} IS NOT NULL"
        for rule, expr in BLOCK_KEYS
    )


def candidate_pairs(con: duckdb.DuckDBPyConnection, max_block: int, block_sizes: str | None = None) -> int:
    """Create ``_am_pairs`` (a < b, rules): fragment pairs worth comparing; returns their count.

    Pairs of two anonymous fragments are skipped (nothing to learn or link); same-customer pairs are kept
    only for known customers (they are the positive examples). A block's size is counted over ``_am_ev``,
    or read from ``block_sizes`` (a table of rule, k, n) when these events are part of a larger log: the live
    matcher compares a slice of the log with blocks sized over the whole of it.
    """
    sizes = (
        f"SELECT rule, k FROM {block_sizes} WHERE n BETWEEN 2 AND {int(max_block)}"
        if block_sizes
        else f"SELECT rule, k FROM keys GROUP BY rule, k HAVING count(*) BETWEEN 2 AND {int(max_block)}"
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _am_pairs AS
        WITH keys AS ({block_keys_sql("(SELECT e.*, f.frag FROM _am_ev e JOIN _am_frag f USING (fid))", "fid")}),
        blocks AS ({sizes}),
        kb AS (SELECT keys.* FROM keys JOIN blocks USING (rule, k)),
        p AS (
            SELECT a.fid AS a, b.fid AS b, list_sort(list_distinct(list(a.rule))) AS rules
            FROM kb a JOIN kb b ON a.rule = b.rule AND a.k = b.k AND a.fid < b.fid
            GROUP BY a.fid, b.fid)
        SELECT p.* FROM p
        JOIN _am_frag fa ON fa.fid = p.a JOIN _am_frag fb ON fb.fid = p.b
        WHERE (fa.known OR fb.known) AND (fa.customer_id <> fb.customer_id OR fa.known)
        ORDER BY a, b""")
    return int(con.execute("SELECT count(*) FROM _am_pairs").fetchone()[0])  # type: ignore[index]


def _cosine(con: duckdb.DuckDBPyConnection, column: str, name: str) -> None:
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _am_{name} AS
        WITH v AS (SELECT fid, {column} AS k, count(*)::DOUBLE AS c FROM _am_ev WHERE {column} IS NOT NULL
                   GROUP BY ALL),
        n AS (SELECT fid, sqrt(sum(c * c)) AS norm FROM v GROUP BY fid),
        d AS (SELECT p.a, p.b, sum(va.c * vb.c) AS dot FROM _am_pairs p
              JOIN v va ON va.fid = p.a JOIN v vb ON vb.fid = p.b AND vb.k = va.k GROUP BY p.a, p.b)
        SELECT p.a, p.b, coalesce(d.dot, 0) / (na.norm * nb.norm) AS {name}
        FROM _am_pairs p LEFT JOIN d USING (a, b)
        LEFT JOIN n na ON na.fid = p.a LEFT JOIN n nb ON nb.fid = p.b""")


def _overlap(con: duckdb.DuckDBPyConnection, expr: str, name: str, where: str = "true") -> None:
    """Shared distinct values of ``expr`` per pair (``name``) and each side's distinct count."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _am_{name} AS
        WITH v AS (SELECT DISTINCT fid, {expr} AS k FROM _am_ev WHERE {where}),
        s AS (SELECT p.a, p.b, count(*) AS {name} FROM _am_pairs p
              JOIN v va ON va.fid = p.a JOIN v vb ON vb.fid = p.b AND vb.k = va.k GROUP BY p.a, p.b)
        SELECT * FROM s""")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _am_{name}_n AS
        SELECT fid, count(DISTINCT {expr}) AS n FROM _am_ev WHERE {where} GROUP BY fid""")


def compare(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Comparison features of every pair in ``_am_pairs``, with the fragments' identity and labels.

    ``label``: 1 same known customer, 0 two customers holding user_ids, -1 unknown (an anonymous side).
    """
    _cosine(con, "category", "category_cosine")
    _cosine(con, "hr", "hour_cosine")
    _cosine(con, "channel", "channel_cosine")
    _overlap(con, "ip_prefix", "ip_prefixes_shared", "ip_prefix IS NOT NULL")
    _overlap(con, "ip_prefix || '|' || day::VARCHAR", "ip_days_shared", "ip_prefix IS NOT NULL")
    _overlap(
        con,
        "ip_prefix || '|' || (ts // 3600)::VARCHAR",
        "ip_hours_shared",
        "ip_prefix IS NOT NULL",
    )
    _overlap(con, "day", "days_shared")
    frame = con.execute("""
        SELECT p.a, p.b, array_to_string(p.rules, ',') AS rules,
               fa.customer_id AS customer_a, fb.customer_id AS customer_b,
               fa.frag AS frag_a, fa.frag_type AS frag_type_a, fb.frag AS frag_b, fb.frag_type AS frag_type_b,
               fa.known AS known_a, fb.known AS known_b, fa.anchor AS anchor_a, fb.anchor AS anchor_b,
               CASE WHEN fa.customer_id = fb.customer_id THEN 1
                    WHEN fa.has_user AND fb.has_user THEN 0 ELSE -1 END AS label,
               (fa.frag = fb.frag)::DOUBLE AS same_device,
               coalesce(ip.ip_prefixes_shared, 0)::DOUBLE AS ip_prefixes_shared,
               coalesce(ip.ip_prefixes_shared / (ipa.n + ipb.n - ip.ip_prefixes_shared), 0)::DOUBLE AS ip_jaccard,
               coalesce(ipd.ip_days_shared, 0)::DOUBLE AS ip_days_shared,
               coalesce(iph.ip_hours_shared, 0)::DOUBLE AS ip_hours_shared,
               CASE WHEN fa.ua_family IS NULL OR fb.ua_family IS NULL THEN NULL
                    ELSE (fa.ua_family = fb.ua_family)::DOUBLE END AS ua_equal,
               coalesce(ds.days_shared / (fa.n_days + fb.n_days - ds.days_shared), 0)::DOUBLE AS day_jaccard,
               greatest(least(fa.last_ts, fb.last_ts) - greatest(fa.first_ts, fb.first_ts), 0)
                   / greatest(least(fa.last_ts - fa.first_ts, fb.last_ts - fb.first_ts), 86400)::DOUBLE
                   AS span_overlap,
               cc.category_cosine, hc.hour_cosine, chc.channel_cosine,
               ln(least(fa.n_events, fb.n_events)) AS log_events_min,
               ln(greatest(fa.n_events, fb.n_events)) AS log_events_max
        FROM _am_pairs p
        JOIN _am_frag fa ON fa.fid = p.a JOIN _am_frag fb ON fb.fid = p.b
        LEFT JOIN _am_ip_prefixes_shared ip USING (a, b)
        LEFT JOIN _am_ip_prefixes_shared_n ipa ON ipa.fid = p.a
        LEFT JOIN _am_ip_prefixes_shared_n ipb ON ipb.fid = p.b
        LEFT JOIN _am_ip_days_shared ipd USING (a, b)
        LEFT JOIN _am_ip_hours_shared iph USING (a, b)
        LEFT JOIN _am_days_shared ds USING (a, b)
        LEFT JOIN _am_category_cosine cc USING (a, b)
        LEFT JOIN _am_hour_cosine hc USING (a, b)
        LEFT JOIN _am_channel_cosine chc USING (a, b)
        ORDER BY p.a, p.b""").df()
    for name in ("category_cosine", "hour_cosine", "channel_cosine"):
        frame[name] = frame[name].astype(np.float64)  # NULL (a side with no such events) stays NaN
    return frame
