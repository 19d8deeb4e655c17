"""Feature layer: the one feature function, daily point-in-time snapshots, and the Feast store over them.

Importing this package is cheap: Feast is imported only when a `FeatureRepo` touches its store.
"""

from features.compute import customer_features
from features.definitions import FEATURES, SERVICES, feature_names
from features.snapshots import SnapshotReport, build_snapshots
from features.store import FeatureRepo

__all__ = [
    "FEATURES",
    "SERVICES",
    "FeatureRepo",
    "SnapshotReport",
    "build_snapshots",
    "customer_features",
    "feature_names",
]
