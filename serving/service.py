"""The BentoML service: a thin HTTP shell over `serving.scoring.ChurnScorer`.

Run it with ``bentoml serve serving.service:CXIService`` (or ``cxi serve``). It reads `contract.Settings` from
the environment (``CXI_WORKSPACE``, ``CXI_MLFLOW_DIR``, ...) when it starts.

* ``POST /v1/scores/churn``: score one customer named by exactly one identifier (`ChurnScoreRequest`); the
  answer carries the top 3 reasons (largest absolute contributions, each saying whether it raises or lowers
  risk). A new ``champion`` alias in the registry is picked up without restart, checked at most every
  ``CXI_SERVING_RELOAD_SECONDS`` (default 5; see `serving.reload`).
* ``GET /livez`` (= ``/healthz``): the process is up. ``GET /readyz``: a churn champion, the identity index
  and the online store are loaded (503 until then; a missing model is retried on each probe).
* Errors: 422 names the invalid field, 404 names the unknown identifier, 503 says what is not loaded yet.
  HTTP codes are attached here only; the core raises `contract.errors` exceptions.

Per-request access logs are off by default (they cost about half the throughput); `serving.server` turns
them on with ``BENTOML_CONFIG_OPTIONS`` when ``settings.access_log`` is set.
"""

from __future__ import annotations

import logging
import threading

import bentoml
from starlette.responses import JSONResponse

from contract.errors import CXIError, NotFoundError
from contract.settings import Settings
from serving.http import ValidateJSON
from serving.schemas import ChurnScore, ChurnScoreRequest, error_body
from serving.scoring import ChurnScorer

log = logging.getLogger(__name__)

CHURN_ROUTE = "/v1/scores/churn"


@bentoml.service(
    name="cxi",
    workers=1,
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
)
class CXIService:
    """CXI scoring API."""

    def __init__(self) -> None:
        self.settings = Settings()
        self._lock = threading.Lock()
        self._scorer: ChurnScorer | None = None
        self._error: str | None = None
        self._load()

    def _load(self) -> ChurnScorer | None:
        """Load the scorer once; remember why it failed so probes and requests can say it."""
        with self._lock:
            if self._scorer is None:
                try:
                    self._scorer = ChurnScorer.from_settings(self.settings)
                    self._error = None
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


CXIService.add_asgi_middleware(ValidateJSON, models={CHURN_ROUTE: ChurnScoreRequest})
