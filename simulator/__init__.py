"""The simulated brand: a seeded population whose events, records, transactions and decisions go through
the importers, plus a hidden ground truth (``<workspace>/truth/``) for benchmarks."""

from simulator.brand import simulate_brand, write_truth
from simulator.config import OFFERS, SimConfig, SimData, SimSummary
from simulator.generate import generate

__all__ = ["OFFERS", "SimConfig", "SimData", "SimSummary", "generate", "simulate_brand", "write_truth"]
