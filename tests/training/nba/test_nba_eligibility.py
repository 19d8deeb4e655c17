"""Eligibility rules as data: conditions, consent suppression, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from contract.errors import ContractError
from training.nba.eligibility import ActionRule, Condition, EligibilityRules

ACTIONS = ["new_customer_offer", "no_offer", "promo"]
CTX = pd.DataFrame(
    {
        "tenure_days": [5, 100, None, 10],
        "consent": ["true", "true", "true", None],
        "tier": ["gold", "silver", "gold", "gold"],
    }
)


def test_rules_and_consent() -> None:
    rules = EligibilityRules(
        rules=[
            ActionRule(action="new_customer_offer", when=[Condition(column="tenure_days", op="<", value=30)]),
            ActionRule(action="promo", when=[Condition(column="tier", op="in", value=["gold"])]),
        ],
        consent_column="consent",
        default_action="no_offer",
    )
    m = rules.mask(CTX, ACTIONS)
    expected = np.array(
        [[True, True, True], [False, True, False], [False, True, True], [False, True, False]]
    )  # missing tenure -> not a new customer; missing consent -> only the default action
    assert (m == expected).all()


def test_yaml_round_trip_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "consent_column: consent\ndefault_action: no_offer\nrules:\n"
        "  - action: new_customer_offer\n    when: [{column: tenure_days, op: '<', value: 30}]\n"
    )
    assert EligibilityRules.from_yaml(path).rules[0].when[0].value == 30
    path.write_text("rules: []\nconsent_column: consent\n")
    with pytest.raises(ContractError, match="default_action"):
        EligibilityRules.from_yaml(path)
    with pytest.raises(ValidationError, match="value"):
        Condition(column="tier", op="in", value="gold")


def test_missing_columns_named() -> None:
    rules = EligibilityRules(
        rules=[ActionRule(action="promo", when=[Condition(column="age", op=">", value=18)])]
    )
    with pytest.raises(ContractError, match="age"):
        rules.mask(CTX, ACTIONS)
    with pytest.raises(ContractError, match="consent_flag"):
        EligibilityRules(consent_column="consent_flag", default_action="no_offer").mask(CTX, ACTIONS)
