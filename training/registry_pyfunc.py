"""The MLflow pyfunc of a model boosted from a prior: booster + prior parameters, one registered model.

`training.registry` logs it (and only it imports this module, lazily): ``mlflow.pyfunc.load_model`` on the
registered version predicts the probability CXI serves (`training.prior.boosted_margin` through a sigmoid),
and `load_boosted` hands the registry the two parts for its native scoring path.

Logged as MLflow "models from code": this file travels with the model and names its model
(``set_model`` at the end), so nothing is pickled; loading needs CXI's ``training.prior`` importable.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow.models
import mlflow.pyfunc
import numpy as np
import pandas as pd

from training.prior import BTYDPrior, boosted_predict

BOOSTER = "booster"
PRIOR = "prior"


class BoostedFromPrior(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """P(churn) = sigmoid(booster raw score + scale × prior margin) for a frame of the booster's features."""

    booster: lgb.Booster
    prior: BTYDPrior

    def load_context(self, context: Any) -> None:
        self.booster = lgb.Booster(model_file=context.artifacts[BOOSTER])
        self.prior = BTYDPrior.from_dict(json.loads(Path(context.artifacts[PRIOR]).read_text()))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        values = model_input[self.booster.feature_name()].to_numpy(dtype="float64", na_value=np.nan)
        return boosted_predict(self.booster, self.prior, values)


def log_boosted(
    booster: lgb.Booster, prior: BTYDPrior, *, signature: Any, input_example: pd.DataFrame, name: str
) -> Any:
    """Log (in the active run) and register the pyfunc of ``booster`` and ``prior`` as a version of ``name``."""
    import mlflow.lightgbm
    import scipy

    with tempfile.TemporaryDirectory() as tmp:
        paths = {BOOSTER: Path(tmp) / "booster.txt", PRIOR: Path(tmp) / "prior.json"}
        booster.save_model(str(paths[BOOSTER]))
        paths[PRIOR].write_text(json.dumps(prior.to_dict(), indent=2))
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=__file__,
            artifacts={k: str(v) for k, v in paths.items()},
            signature=signature,
            input_example=input_example,
            registered_model_name=name,
            # pinned, not inferred (inference re-imports the model in a subprocess); the class is CXI's own
            pip_requirements=[
                *mlflow.lightgbm.get_default_pip_requirements(),
                f"scipy=={scipy.__version__}",
                f"pandas=={pd.__version__}",
            ],
        )


def load_boosted(uri: str) -> tuple[lgb.Booster, BTYDPrior]:
    """The booster and the prior of a registered `BoostedFromPrior`."""
    model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    return model.booster, model.prior


mlflow.models.set_model(BoostedFromPrior())
