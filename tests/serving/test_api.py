"""The public names of `serving` are pinned; importing it loads no server, store or registry."""

from __future__ import annotations

import subprocess
import sys

import serving
from contract.settings import REPO_ROOT


def test_public_api_is_pinned() -> None:
    assert sorted(serving.__all__) == ["ChurnScore", "ChurnScoreRequest", "ChurnScorer", "ErrorResponse"]


def test_importing_serving_loads_no_heavy_component() -> None:
    code = "import sys, serving; print(sorted({'bentoml', 'feast', 'mlflow', 'lightgbm'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
