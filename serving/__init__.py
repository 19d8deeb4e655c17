"""Serving: the BentoML scoring service over the churn champion, the Feast online store and the identity map.

`ChurnScorer` is the plain-Python core; `serving.service.CXIService` the BentoML service (imported only by
``bentoml serve``); `serving.server` starts and probes it as a child process.
"""

from serving.schemas import ChurnScore, ChurnScoreRequest, ErrorResponse
from serving.scoring import ChurnScorer

__all__ = ["ChurnScore", "ChurnScoreRequest", "ChurnScorer", "ErrorResponse"]
