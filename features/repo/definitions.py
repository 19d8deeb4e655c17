"""Feast repository entry point for `feast apply` users: the objects of `features.definitions.build`.

CXI applies the same objects itself (`cxi features apply`); paths come from Settings (CXI_* variables).
Feast collects module-level objects only, so each one is bound to a name here.
"""

from contract.settings import Settings
from features.definitions import build

customer, customer_activity_snapshots, customer_activity, customer_live, churn_v1, live_v1 = build(Settings())
