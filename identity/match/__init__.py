"""Probabilistic record matching: blocking, vectorised comparisons, Fellegi–Sunter (EM) or a calibrated
LightGBM on deterministically labelled pairs, and constrained clustering into customers.

`RecordMatcher(mode="auto", threshold=0.5).link(records) -> LinkResult(clusters, pairs)`; `read_records`
reads CustomerRecord files. LightGBM (and scikit-learn) are imported only in supervised mode; the
unsupervised path needs numpy, pandas, pyarrow, rapidfuzz and jellyfish only (no scipy, no DuckDB of its
own); no feature store, registry or server is ever imported.
"""

from identity.match.blocking import BlockingRule, Candidates, blocking_recall, candidate_pairs
from identity.match.compare import ComparedPairs, Comparison, compare_pairs
from identity.match.fellegi_sunter import FellegiSunter
from identity.match.household import household_negatives
from identity.match.link import LinkResult, RecordMatcher
from identity.match.records import ReadReport, prepare, read_records
from identity.match.supervised import SupervisedModel

__all__ = [
    "BlockingRule",
    "Candidates",
    "ComparedPairs",
    "Comparison",
    "FellegiSunter",
    "LinkResult",
    "ReadReport",
    "RecordMatcher",
    "SupervisedModel",
    "blocking_recall",
    "candidate_pairs",
    "compare_pairs",
    "household_negatives",
    "prepare",
    "read_records",
]
