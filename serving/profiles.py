"""The unified profile of one customer (GET /v1/profiles/{id}): identity, recent events, live features, scores.

Identity state: ``anonymous`` (no login id, email or other known identifier stitched yet),
``authenticated`` (the latest login/signup is newer than the latest logout and the session is still open),
else ``known_logged_out``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from contract.errors import NotFoundError
from serving.schemas import Profile, ProfileEvent, ProfileScore

if TYPE_CHECKING:
    from serving.realtime import RealtimeEngine
    from serving.scoring import ChurnScorer

LOGIN_TYPES = frozenset({"login", "signup"})
RECENT_EVENTS = 20


def identity_state(known: bool, events: pd.DataFrame, now: datetime, session_gap: timedelta) -> str:
    """anonymous / authenticated / known_logged_out from the customer's events (any order)."""
    if not known:
        return "anonymous"
    if events.empty:
        return "known_logged_out"
    ts = pd.to_datetime(events["occurred_at"], utc=True)
    logins = ts[events["type"].isin(LOGIN_TYPES)]
    logouts = ts[events["type"] == "logout"]
    if logins.empty:
        return "known_logged_out"
    last_login = logins.max()
    if not logouts.empty and logouts.max() >= last_login:
        return "known_logged_out"
    return "authenticated" if pd.Timestamp(now) - ts.max() <= session_gap else "known_logged_out"


def build_profile(
    engine: RealtimeEngine, customer_id: str, scorer: ChurnScorer | None, *, recent: int = RECENT_EVENTS
) -> Profile:
    """The profile of a customer id (absorbed ids resolve to their survivor); NotFoundError when unknown."""
    from features.compute import SESSION_GAP_MINUTES

    now = engine.clock()
    canonical = engine.customer_for("customer_id", customer_id) or customer_id
    identifiers = engine.identity.identifiers_of(canonical)
    events = engine.features.recent_events(canonical, limit=None)
    if not identifiers and events.empty:
        raise NotFoundError(f"customer_id: no customer {customer_id!r} (unknown, or merged and then removed)")
    state = identity_state(
        engine.identity.is_known(canonical), events, now, timedelta(minutes=SESSION_GAP_MINUTES)
    )
    newest = events.sort_values("occurred_at", ascending=False).head(recent)
    recent_events = [ProfileEvent(**_clean(row)) for row in newest.to_dict("records")]

    # exact at this instant, both feature services at once (one computation with the batch function)
    frame = engine.features.compute([canonical], now)
    row = frame.iloc[0].to_dict() if len(frame) else {}
    for col in ("customer_id", "as_of", "event_timestamp", "snapshot_at"):
        row.pop(col, None)
    features = {k: _clean_value(v) for k, v in row.items()}
    as_of = now

    scores: dict[str, ProfileScore] = {}
    if scorer is not None:
        from serving.schemas import ChurnScoreRequest

        try:
            churn = scorer.score(ChurnScoreRequest(customer_id=canonical))
            scores["churn"] = ProfileScore(
                model_name=churn.model_name,
                model_version=churn.model_version,
                probability=churn.churn_probability,
            )
        except NotFoundError:
            pass  # no features yet for a brand-new profile: the profile still answers
    return Profile(
        customer_id=canonical,
        state=state,
        identifiers=[{"type": t, "value": v} for t, v in identifiers],
        recent_events=recent_events,
        features=features,
        features_as_of=_clean_value(as_of),
        scores=scores,
    )


def _clean_value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if hasattr(v, "item"):
        return v.item()
    return v


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _clean_value(v) for k, v in row.items() if k in ProfileEvent.model_fields}
