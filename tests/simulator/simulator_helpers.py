"""Helpers of the simulator tests: the tiny config and a fingerprint of generated data."""

from __future__ import annotations

import hashlib

import pandas as pd

from simulator import SimConfig, SimData

TINY = SimConfig(customers=300, days=30, seed=3)


def fingerprint(data: SimData) -> str:
    """A hash over every frame, rows sorted, so equal data gives an equal digest."""
    h = hashlib.sha256()
    for name, frame in sorted(data.tables().items()):
        f = frame.astype({c: str for c in frame.columns if frame[c].dtype == object})
        f = f.sort_values(list(f.columns), ignore_index=True)
        h.update(name.encode())
        h.update(",".join(f.columns).encode())
        h.update(pd.util.hash_pandas_object(f, index=False).to_numpy().tobytes())
    return h.hexdigest()
