"""Our packages, not PyPI's namesakes, are the ones imported; `mlflow/` never shadows the real mlflow."""

from __future__ import annotations

import importlib.util

import pytest

from contract.settings import REPO_ROOT

PACKAGES = ["contract", "events", "identity", "features", "training", "serving", "simulator", "cxi"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_lies_in_the_repository(name: str) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None:
        pytest.skip(f"{name} not written yet")
    places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])
    assert places and all(str(p).startswith(str(REPO_ROOT)) for p in places), f"{name} resolves to {places}"


def test_identity_and_events_file_inside_repo() -> None:
    import contract
    import events

    for mod in (contract, events):
        assert str(REPO_ROOT) in str(mod.__file__)


def test_mlflow_folder_has_no_init() -> None:
    assert not (REPO_ROOT / "mlflow" / "__init__.py").exists()


def test_test_module_names_are_unique() -> None:
    """Test folders have no __init__.py (rootdir imports), so two test modules with one basename collide."""
    from collections import Counter

    names = Counter(p.name for p in (REPO_ROOT / "tests").rglob("*.py") if p.name != "conftest.py")
    assert not [n for n, c in names.items() if c > 1]
