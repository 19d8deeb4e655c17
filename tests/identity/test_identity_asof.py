"""As-of identity: the map as the graph was at a past time."""

from __future__ import annotations

from identity_tables import at, events_table

from contract import Workspace
from identity import IdentityIndex, IdentityResolver, attach_customer_ids


def test_a_login_after_t_does_not_merge_the_anonymous_history_as_of_t(ws: Workspace) -> None:
    ws.replace(
        "events",
        events_table(
            [
                {"anonymous_id": "a1", "minute": 0},
                {"anonymous_id": "a1", "device_id": "d1", "minute": 10},
                {"anonymous_id": "a9", "user_id": "u1", "type": "login", "minute": 20},
                {"anonymous_id": "a1", "user_id": "u1", "type": "login", "minute": 100},
            ]
        ),
    )
    IdentityResolver(ws).resolve()
    now = IdentityIndex.load(ws)
    assert now.customer_for("anonymous_id", "a1") == now.customer_for("user_id", "u1")
    then = IdentityIndex.load(ws, as_of=at(50))
    assert then.customer_for("anonymous_id", "a1") == then.customer_for("device_id", "d1")
    assert then.customer_for("anonymous_id", "a1") != then.customer_for("user_id", "u1")
    assert then.customer_for("user_id", "u1") == then.customer_for("anonymous_id", "a9")
    assert IdentityIndex.load(ws, as_of=at(5)).customer_for("device_id", "d1") is None  # not seen yet
    # the cluster that existed keeps its current id as of then; the later-merged part gets the alias id
    assert then.customer_for("anonymous_id", "a1") == now.customer_for("anonymous_id", "a1")
    with ws.connect() as con:
        attach_customer_ids(con, as_of=at(50))
        got = dict(con.execute("SELECT event_id, customer_id FROM resolved_events").fetchall())
    assert set(got) == {"e000000", "e000001", "e000002"}  # events after as_of are not in the view
    assert got["e000000"] == got["e000001"] != got["e000002"]
