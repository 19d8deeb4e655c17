"""Benchmark of the feature layer (not collected by pytest): run `python tests/features/benchmark_features.py`.

~10k customers × 90 days (~1M resolved events): snapshot build, materialize, online read latency.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from features_testdata import make_settings, seed_workspace, synthetic_events

from features.store import FeatureRepo


def main(customers: int = 10_000, days: int = 90, per_customer: float = 100.0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp))
        t = time.perf_counter()
        events = synthetic_events(customers, days, per_customer, datetime(2024, 1, 1, tzinfo=UTC), seed=1)
        ws = seed_workspace(settings, events)
        print(f"generated {len(events):,} events in {time.perf_counter() - t:.1f}s")
        repo = FeatureRepo(settings)
        t = time.perf_counter()
        repo.build(ws)
        report = repo.last_build
        assert report is not None
        print(
            f"build: {report.rows:,} snapshot rows, {report.customers:,} customers in {time.perf_counter() - t:.1f}s"
        )
        t = time.perf_counter()
        import feast  # noqa: F401

        print(f"import feast: {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        repo.apply()
        print(f"apply: {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        repo.materialize()
        print(
            f"materialize (latest snapshot, {report.customers:,} customers): {time.perf_counter() - t:.1f}s"
        )
        rng = np.random.default_rng(0)
        repo.online(["c0"])  # warm the registry cache
        lat = []
        for i in rng.integers(0, customers, 200):
            t = time.perf_counter()
            repo.online([f"c{i}"])
            lat.append(time.perf_counter() - t)
        print(
            f"online read, one customer: p50 {np.median(lat) * 1e3:.1f} ms, p95 {np.percentile(lat, 95) * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main(*(float(a) if "." in a else int(a) for a in sys.argv[1:]))  # type: ignore[arg-type]
