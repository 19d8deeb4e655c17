"""Fault test: kill -9 the service during sustained ingestion; nothing acknowledged is lost or doubled, and the
state it rebuilds on restart is the state a replay of the log builds.

Runs on a copy of the session's walking-skeleton workspace with its own server (the one it kills).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx
import pandas as pd
import pytest

from contract import Workspace
from tests.chain import Chain, copy_chain, start_server

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _kill_9(pid: int) -> None:
    """SIGKILL the server and every process under it (BentoML's workers are not all in its process group)."""
    import psutil

    parent = psutil.Process(pid)
    victims = [parent, *parent.children(recursive=True)]
    for p in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=30)


def _users(ws: Workspace, n: int) -> list[str]:
    with ws.connect("identity_map") as con:
        return [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT identifier_value FROM identity_map WHERE identifier_type = 'user_id' "
                "ORDER BY 1 LIMIT ?",
                [n],
            ).fetchall()
        ]


def test_kill_9_loses_no_acknowledged_event_and_recovers_the_replayed_state(
    chain: Chain, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from events.log import EventLog

    root = tmp_path_factory.mktemp("fault")
    settings = copy_chain(chain, root)
    ws = Workspace(settings.workspace)
    users = _users(ws, 20)
    proc, url = start_server(settings, root / "server1.log")

    acked: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            i = 0
            while not stop.is_set():
                batch = [
                    {
                        "event_id": f"f-{uuid.uuid4().hex}",
                        "occurred_at": datetime.now(UTC).isoformat(),
                        "type": "product_view",
                        "channel": "web",
                        "user_id": users[(i + k) % len(users)],
                        "anonymous_id": f"fault-anon-{(i + k) % 7}",
                        "properties": {"category": "shoes"},
                    }
                    for k in range(5)
                ]
                i += 5
                try:
                    r = client.post("/v1/events", json=batch, params={"wait": "durable"})
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    acked.extend(e["event_id"] for e in batch if e["event_id"] not in r.json()["duplicates"])

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(4)
    _kill_9(proc.pid)
    proc.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) > 20, "the load should have been acknowledged for a while before the kill"

    event_log = EventLog.open(ws, read_only=True)  # the killed workers may not have released the lock yet
    try:
        logged = Counter(event_log.read().column("event_id").to_pylist())
    finally:
        event_log.close()
    assert all(logged[e] == 1 for e in acked), "every acknowledged event is in the log exactly once"

    # restart: the engine re-applies the log; then compare its state with a replay of the same log
    from serving import server

    proc, url = start_server(settings, root / "server2.log")
    try:
        live = {}
        for user in users[:5]:
            score = httpx.post(f"{url}/v1/scores/churn", json={"user_id": user}, timeout=60)
            assert score.status_code == 200, score.text
            cid = score.json()["customer_id"]
            got = httpx.get(f"{url}/v1/profiles/{cid}", timeout=60)
            assert got.status_code == 200, got.text
            live[user] = got.json()
    finally:
        server.stop(proc)

    from cxi.pipeline import replay
    from features.compute import customer_features
    from identity.resolved import attach_customer_ids

    replay(settings)
    with ws.connect() as con:
        attach_customer_ids(con)
        for user, profile in live.items():
            (cid,) = con.execute(
                "SELECT customer_id FROM identity_map WHERE identifier_type = 'user_id' AND identifier_value = ?",
                [user],
            ).fetchone()
            assert cid == profile["customer_id"], "live identity == replayed identity"
            as_of = pd.Timestamp(profile["features_as_of"])
            con.execute(
                "CREATE OR REPLACE TEMP TABLE spine AS SELECT ?::VARCHAR AS customer_id, ?::TIMESTAMPTZ AS as_of",
                [cid, as_of.to_pydatetime()],
            )
            batch = customer_features(con, "resolved_events", "spine").df().iloc[0]
            for name, value in profile["features"].items():
                if name not in batch.index:
                    continue
                expected = batch[name]
                if pd.isna(expected):
                    assert value is None, name
                elif isinstance(value, str):
                    assert value == expected, name
                else:
                    assert value == pytest.approx(float(expected), rel=1e-6, abs=1e-6), name
