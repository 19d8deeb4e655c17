"""The BentoML service: a thin HTTP shell over `serving.scoring.ChurnScorer`.

Run it with ``bentoml serve serving.service:CXIService`` (or ``cxi serve``). It reads `contract.Settings` from
the environment (``CXI_WORKSPACE``, ``CXI_MLFLOW_DIR``, ...) when it starts.

* ``POST /v1/scores/churn``: score one customer named by exactly one identifier (`ChurnScoreRequest`); the
  answer carries the top 3 reasons (largest absolute contributions, each saying whether it raises or lowers
  risk). A new ``champion`` alias in the registry is picked up without restart, checked at most every
  ``CXI_SERVING_RELOAD_SECONDS`` (default 5; see `serving.reload`).
* ``GET /livez`` (= ``/healthz``): the process is up. ``GET /readyz``: a churn champion, the identity index
  and the online store are loaded (503 until then; a missing model is retried on each probe).
* ``POST /v1/events`` (one JSON event, a JSON array, or NDJSON): validated against the contract, appended to the
  durable event log (acknowledged only after fsync), idempotent by event_id, then applied to live identity and
  features; ``?wait=visible`` (default) answers once the next score reflects the events, ``?wait=durable`` as
  soon as they are logged. Rejected events are answered with index, field and reason and quarantined. When the
  engine is behind: 429 with Retry-After (nothing accepted, nothing lost).
* ``GET /v1/profiles/{customer_id}``: the unified profile (identifiers, identity state, recent events, live
  features, latest scores). Real-time routes are a FastAPI app mounted at ``/v1`` (`serving.realtime`).
* Errors: 422 names the invalid field, 404 names the unknown identifier, 503 says what is not loaded yet.
  HTTP codes are attached here only; the core raises `contract.errors` exceptions.

Per-request access logs are off by default (they cost about half the throughput); `serving.server` turns
them on with ``BENTOML_CONFIG_OPTIONS`` when ``settings.access_log`` is set.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from typing import TYPE_CHECKING, Literal

import bentoml
from fastapi import FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from contract.errors import ContractError, CXIError, NotFoundError
from contract.settings import Settings
from serving.http import ValidateJSON
from serving.schemas import ChurnScore, ChurnScoreRequest, EventsAck, Profile, RejectedEvent, error_body
from serving.scoring import ChurnScorer

if TYPE_CHECKING:
    from serving.realtime import RealtimeEngine

log = logging.getLogger(__name__)

CHURN_ROUTE = "/v1/scores/churn"

#: The real-time routes (mounted at /v1 beside the BentoML APIs).
api = FastAPI(
    title="CXI real-time API",
    description="Event ingestion and unified profiles.",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


def _freeze_loaded_state() -> None:
    """Keep what was just loaded (identity graph, held events, models: ~0.5M objects, as long-lived as the
    process) out of the cyclic collector, whose full collections walked it (~0.25 s pauses at 1,000 events/s).
    Frozen objects are never collected: a champion replaced later stays in memory (a model, a few MB each)."""
    gc.collect()
    gc.freeze()


def _collector_for_latency(settings: Settings) -> None:
    """The cyclic collector's full collections stop every thread; under load they came every ~4 s and took
    50-100 ms, each one the slowest requests of its seconds. Full collections run `gc_full_threshold` times
    rarer than Python's default (one per that many middle-generation collections; cyclic garbage waits longer,
    plain garbage is freed by reference counts at once), and what the first traffic loaded for good (modules
    imported on first use, caches) is frozen too, `gc_refreeze_seconds` after start."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, settings.gc_full_threshold)
    if settings.gc_refreeze_seconds > 0:
        timer = threading.Timer(settings.gc_refreeze_seconds, _freeze_loaded_state)
        timer.daemon = True
        timer.start()


@bentoml.service(
    name="cxi",
    workers=1,
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(api, path="/v1")
class CXIService:
    """CXI scoring API."""

    def __init__(self) -> None:
        self.settings = Settings()
        self._lock = threading.Lock()
        self._scorer: ChurnScorer | None = None
        self._error: str | None = None
        self._engine: RealtimeEngine | None = None
        self._engine_error: str | None = None
        self._engine_lock = threading.Lock()
        self._store = None
        self._open_engine()
        self._load()

    def _open_engine(self) -> RealtimeEngine | None:
        """The real-time engine (log, live identity, live features), opened once; None when disabled/failed."""
        if not self.settings.realtime:
            return None
        with self._engine_lock:
            if self._engine is None:
                try:
                    from serving.realtime import RealtimeEngine

                    self._engine = RealtimeEngine.open(self.settings)
                    self._engine_error = None
                    _freeze_loaded_state()
                    _collector_for_latency(self.settings)
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    if error != self._engine_error:
                        log.warning("real-time engine not started: %s", error, exc_info=True)
                    self._engine_error = error
            return self._engine

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        if self._engine is not None:
            self._engine.close()

    def _load(self) -> ChurnScorer | None:
        """Load the scorer once; remember why it failed so probes and requests can say it."""
        with self._lock:
            if self._scorer is None:
                try:
                    engine = self._open_engine()
                    self._scorer = ChurnScorer.from_settings(self.settings, identity=engine, features=engine)
                    self._error = None
                    _freeze_loaded_state()
                except Exception as exc:  # a probe must answer, not crash the worker; the log keeps the trace
                    error = f"{type(exc).__name__}: {exc}"
                    if error != self._error:  # log each new reason once, not on every probe
                        log.warning(
                            "churn scorer not loaded: %s", error, exc_info=not isinstance(exc, CXIError)
                        )
                    self._error = error
            return self._scorer

    def __is_ready__(self) -> bool:
        return self._load() is not None

    @bentoml.api(route=CHURN_ROUTE)
    def churn(self, request: ChurnScoreRequest, /) -> ChurnScore:
        """Churn probability of one customer, from the champion model and the online feature store."""
        scorer = self._load()
        if scorer is None:
            return JSONResponse(error_body(f"not ready: {self._error}"), status_code=503)  # type: ignore[return-value]
        try:
            return scorer.score(request)
        except NotFoundError as exc:
            return JSONResponse(error_body(str(exc)), status_code=404)  # type: ignore[return-value]

    # --- real-time routes (FastAPI, mounted at /v1) -----------------------------------------------------------
    @api.post("/events", response_model=EventsAck, responses={422: {}, 429: {}, 503: {}})
    async def events(
        self,
        request: Request,
        wait: Literal["visible", "durable", "settled"] = Query(
            "visible",
            description="visible: answer once scores reflect the events; durable: once logged; settled: "
            "once segments (and webhook outboxes) reflect them too.",
        ),
    ) -> JSONResponse:
        """Ingest one event, a JSON array of events, or NDJSON (content-type application/x-ndjson)."""
        from events.ingest import parse_body
        from events.log import Overloaded
        from serving.realtime import NotVisibleError

        engine = self._open_engine()
        if engine is None:
            return JSONResponse(error_body(f"not ready: {self._engine_error or 'real-time off'}"), 503)
        try:
            records = parse_body(await request.body(), request.headers.get("content-type"))
        except ContractError as exc:
            return JSONResponse(error_body(str(exc)), status_code=422)
        visible = wait != "durable"
        try:
            result = await run_in_threadpool(engine.submit, records, "durable")
            if result.accepted.num_rows:  # wait as a future: waiting requests hold no worker thread
                await engine.until(int(result.accepted.column("seq")[-1].as_py()), wait)
        except Overloaded as exc:
            return JSONResponse(
                error_body(f"overloaded: {exc}"),
                status_code=429,
                headers={"Retry-After": f"{max(1, round(exc.retry_after))}"},
            )
        except NotVisibleError as exc:
            return JSONResponse({"error": str(exc)}, status_code=202)
        accepted = result.accepted
        ack = EventsAck(
            accepted=accepted.num_rows,
            duplicates=list(result.duplicates),
            rejected=[RejectedEvent(**vars(r)) for r in result.rejected],
            last_seq=int(accepted.column("seq")[-1].as_py()) if accepted.num_rows else None,
            visible=visible,
        )
        status = 422 if ack.rejected and not ack.accepted and not ack.duplicates else 200
        return JSONResponse(ack.model_dump(mode="json"), status_code=status)

    @api.get("/profiles/{customer_id}", response_model=Profile, responses={404: {}, 503: {}})
    def profile(self, customer_id: str) -> JSONResponse:
        """The unified profile of a customer id (an absorbed id answers with its survivor)."""
        from serving.profiles import build_profile

        engine = self._open_engine()
        if engine is None:
            return JSONResponse(error_body(f"not ready: {self._engine_error or 'real-time off'}"), 503)
        try:
            body = build_profile(engine, customer_id, self._load())
        except NotFoundError as exc:
            return JSONResponse(error_body(str(exc)), status_code=404)
        return JSONResponse(body.model_dump(mode="json"))

    # --- segments: pull API (GET /v1/segments, GET /v1/segments/{name}/members) ---------------------------
    def _segment_store(self):  # type: ignore[no-untyped-def]
        """The workspace's segment store: the live segments (a child process, by default) append to it and
        every read re-lists its parts, so live changes show at once."""
        if self._store is None:
            from contract.workspace import Workspace
            from segments.store import SegmentStore

            self._store = SegmentStore(Workspace(self.settings.workspace))
        return self._store

    @api.get("/segments", responses={404: {}})
    def segments(self) -> JSONResponse:
        """Every segment of the latest build: definition summary, current size (live changes included)."""
        from segments.build import definitions

        store = self._segment_store()
        try:
            sizes = store.sizes()
        except NotFoundError as exc:
            return JSONResponse(error_body(str(exc)), status_code=404)
        build = store.latest_build()
        defs = {seg.name: seg for seg in definitions(self.settings).segments}
        out = []
        for name, size in sizes.items():
            seg = defs.get(name)
            out.append(
                {
                    "name": name,
                    "description": seg.description if seg else "",
                    "size": size,
                    "offer_bearing": bool(seg and seg.offer_bearing),
                    "priority": seg.priority if seg else 0,
                    "channels": [str(c) for c in seg.channels] if seg else [],
                    "consent": [str(c) for c in seg.consent] if seg else [],
                    "skipped": build.skipped.get(name) if build else None,
                }
            )
        return JSONResponse(
            {
                "build_id": build.build_id if build else None,
                "built_at": build.at.isoformat() if build else None,
                "as_of": build.as_of.isoformat() if build else None,
                "models": build.models if build else {},
                "segments": out,
            }
        )

    @api.get("/segments/{name}/members", responses={404: {}, 422: {}})
    def segment_members(
        self,
        name: str,
        cursor: str | None = Query(None, description="next_cursor of the previous page."),
        limit: int = Query(1000, description="Rows per page (1..10000)."),
        since: str | None = Query(
            None, description="Deltas instead of members: entry/exit events after this seq or ISO time."
        ),
    ) -> JSONResponse:
        """Current members by customer_id (keyset pages), or with ``since`` the entry/exit deltas after it."""
        from datetime import datetime

        store = self._segment_store()
        after: int | datetime | None = None
        if since is not None:
            try:
                after = int(since) if since.isdigit() else datetime.fromisoformat(since)
            except ValueError:
                return JSONResponse(error_body("since: must be an event seq or an ISO-8601 time"), 422)
        try:
            page = store.members(name, cursor=cursor, limit=limit, since=after)
        except NotFoundError as exc:
            return JSONResponse(error_body(str(exc)), status_code=404)
        except ContractError as exc:
            return JSONResponse(error_body(str(exc)), status_code=422)
        rows = json.loads(page.rows.to_json(orient="records", date_format="iso", date_unit="us"))
        return JSONResponse(
            {"segment": name, "rows": rows, "next_cursor": page.next_cursor, "more": page.more}
        )


CXIService.add_asgi_middleware(ValidateJSON, models={CHURN_ROUTE: ChurnScoreRequest})
