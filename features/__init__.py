"""Feature layer: the one feature function, daily point-in-time snapshots, the Feast store over them, and the
streaming path (`LiveFeatures`) that keeps online rows equal to the function at `now`.

Importing this package is cheap: Feast is imported only when a `FeatureRepo` touches its store.
"""

from features.compute import customer_features
from features.definitions import FEATURES, LIVE_FEATURES, SERVICES, feature_names
from features.live import LiveFeatures
from features.snapshots import SnapshotReport, build_snapshots
from features.store import FeatureRepo

__all__ = [
    "FEATURES",
    "LIVE_FEATURES",
    "SERVICES",
    "FeatureRepo",
    "LiveFeatures",
    "SnapshotReport",
    "build_snapshots",
    "customer_features",
    "feature_names",
]
