"""LiveMatcher: the anonymous matcher run on live profiles gives the batch matcher's links for them."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from test_anonymous_matcher import _tables, _workspace, make_logs

from contract import Workspace
from contract.errors import ContractError
from events.importers import import_frame
from identity import IdentityResolver
from identity.live import LiveIdentity
from identity.live_match import LiveMatcher
from identity.match.anonymous import AnonymousMatcher


def anonymous_customers(ws: Workspace) -> list[str]:
    m = ws.read("identity_map").to_pandas()
    known = m.groupby("customer_id")["identifier_type"].agg(
        lambda t: (~t.isin(["device_id", "anonymous_id"])).any()
    )
    return sorted(known[~known].index)


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["left_type", "left_value"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LiveMatcher, Workspace, pd.DataFrame]:
    events, _ = make_logs(seed=1, households=400)
    ws = _workspace(tmp_path_factory.mktemp("live-match") / "ws", events)
    matcher, note = LiveMatcher.train(ws, mode="on")
    assert matcher is not None, note
    assert matcher.load(ws) == len(events)
    return matcher, ws, events


def test_links_of_the_profiles_asked_equal_the_batch_matchers(trained: tuple) -> None:
    matcher, ws, _ = trained
    with _tables(ws) as con:
        batch = matcher.matcher.links(con)
    assert len(batch) >= 10
    identity = LiveIdentity.load(ws)
    live = matcher.links(identity, anonymous_customers(ws))
    pd.testing.assert_frame_equal(ordered(live), ordered(batch))
    # asked about a few profiles, it answers for those only; known customers are not matched
    some = anonymous_customers(ws)[:40]
    mine = {v for c in some for t, v in identity.identifiers_of(c)}
    part = matcher.links(identity, [*some, identity.customer_for("user_id", "u-1-0") or "nobody"])
    assert set(part["left_value"]) <= mine
    pd.testing.assert_frame_equal(ordered(part), ordered(batch[batch["left_value"].isin(mine)]))


def test_a_device_new_to_the_log_is_linked_once_its_events_stream_in(trained: tuple, tmp_path: Path) -> None:
    """Events of never-logged-in devices held back from the workspace, then observed live and appended:
    the pass links them as the batch matcher (same model) does on the whole log."""
    matcher, _, events = trained
    anon_devices = events.groupby("device_id")["user_id"].apply(lambda u: u.isna().all())
    held = set(anon_devices[anon_devices].index[::3])
    later = events[events["device_id"].isin(held)]
    ws = _workspace(tmp_path / "ws", events[~events["device_id"].isin(held)])
    live = LiveMatcher(matcher.matcher)
    live.load(ws)
    identity = LiveIdentity.load(ws)
    batch_of = Workspace(tmp_path / "staging")
    import_frame(batch_of, "events", later, source="test")
    new = batch_of.read("events")
    update = identity.observe(new)
    assert live.add(new) == new.num_rows
    got = live.links(identity, update.touched)
    assert len(got) >= 3 and set(got["left_value"]) <= held

    full = _workspace(tmp_path / "full", events)
    with _tables(full) as con:
        batch = matcher.matcher.links(con)
    pd.testing.assert_frame_equal(ordered(got), ordered(batch[batch["left_value"].isin(got["left_value"])]))
    assert set(batch["left_value"]) & held == set(
        got["left_value"]
    )  # every held device batch links, live links


def test_untrained_matcher_and_bad_events_are_named() -> None:
    with pytest.raises(ContractError, match="not fitted"):
        LiveMatcher(AnonymousMatcher())
    with pytest.raises(ContractError, match="device_id"):
        LiveMatcher.__new__(LiveMatcher).add(pa.table({"event_id": ["e1"]}))


def test_a_workspace_without_labels_leaves_live_matching_off(tmp_path: Path) -> None:
    events, _ = make_logs(seed=3, households=40)
    ws = Workspace(tmp_path / "ws")
    import_frame(ws, "events", events.assign(user_id=None, type="page_view"), source="test")
    IdentityResolver(ws).resolve()
    matcher, note = LiveMatcher.train(ws)
    assert matcher is None and "too few" in note


def test_the_engine_links_a_streamed_anonymous_device_to_its_customer(trained: tuple, tmp_path: Path) -> None:
    """Real engine (durable log, live identity, live features on a real Feast store), matching on: events of
    a never-logged-in device are posted; a pass links it, the applier merges it into the known customer, the
    link is stored with the resolver's, and the device's earlier events count in the customer's features."""
    from contract import Settings
    from features.store import FeatureRepo
    from identity.state import EXTRA_TABLE
    from serving.realtime import RealtimeEngine

    matcher, _, events = trained
    full = _workspace(tmp_path / "full", events)
    with _tables(full) as con:
        batch = matcher.matcher.links(con)
    held_device = batch[batch["left_type"] == "device_id"]["left_value"].iloc[0]
    owner = batch.set_index("left_value").loc[held_device]

    settings = Settings(
        workspace=tmp_path / "ws",
        mlflow_dir=tmp_path / "mlflow",
        live_anonymous_match="on",
        live_match_seconds=0.2,
        live_write_behind_seconds=0,
    )
    ws = _workspace(settings.workspace, events[events["device_id"] != held_device])
    repo = FeatureRepo(settings)
    repo.build(ws)
    repo.apply()
    engine = RealtimeEngine.open(settings, repo, segments=False)
    try:
        deadline = time.monotonic() + 120
        while (engine.matching is None or engine.matching.matcher is None) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert engine.matching is not None and engine.matching.matcher is not None, "trained on the workspace"
        later = events[events["device_id"] == held_device]
        records = [
            {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in r.items() if v is not None}
            for r in later.astype(object).where(later.notna(), None).to_dict("records")
        ]
        result = engine.submit(records, wait="visible")
        assert not result.rejected
        known = engine.customer_for(owner["right_type"], owner["right_value"])
        assert known is not None
        while engine.stats.merges < 1 and time.monotonic() < deadline:  # the applier recorded the merge
            time.sleep(0.2)
        assert engine.stats.merges >= 1
        assert engine.customer_for("device_id", held_device) == known
        held_events = set(later["event_id"])
        assert held_events <= set(engine.features.events_of(known)["event_id"].to_pylist())
        stored = ws.read(EXTRA_TABLE).to_pandas()
        assert held_device in set(stored["left_value"])
        assert engine.matching.matcher.events == len(
            events
        )  # every event held once: workspace, log tail, applier
    finally:
        engine.close()
