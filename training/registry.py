"""The model registry: the only module that talks to MLflow.

Tracking and registry share one SQLite store (``sqlite:///<mlflow_dir>/mlflow.db``) with artifacts under
``<mlflow_dir>/artifacts``; both are set when a Registry first connects, never at import. Models are
LightGBM boosters logged with the native flavor and addressed by alias (``champion``, ``challenger``);
serving loads the native booster, not a pyfunc wrapper, which costs far more per row.

A churn model boosted from a buy-till-you-die prior (`training.prior`) is two parts, so it is logged as an
MLflow pyfunc (`training.registry_pyfunc`) holding the booster and the prior's parameters, and its version
is tagged ``cxi.prior``: ``mlflow.pyfunc.load_model`` then gives the probability CXI serves, and
`Registry.load` takes both parts out of it for the fast native path.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from contract.errors import NotFoundError
from contract.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    import lightgbm as lgb
    from matplotlib.figure import Figure
    from mlflow import MlflowClient

    from training.explain import Reason
    from training.prior import BTYDPrior

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Version tag naming the prior a model was boosted from (absent: the booster alone is the model).
PRIOR_TAG = "cxi.prior"


@dataclass(frozen=True)
class ChampionModel:
    """A registered model version loaded for scoring: the native booster, the features it expects, and the
    prior it was boosted from (None: the booster's own ``predict`` is the score)."""

    name: str
    version: str
    booster: lgb.Booster
    feature_names: list[str]
    feature_service: str
    run_id: str
    prior: BTYDPrior | None = None

    def matrix(self, features: pd.DataFrame) -> np.ndarray:
        """The model's feature columns of ``features`` (any column order) as a float matrix."""
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise NotFoundError(f"features: missing columns for model {self.name} v{self.version}: {missing}")
        return features[self.feature_names].to_numpy(dtype="float64", na_value=np.nan)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Scores for a frame holding (at least) the model's feature columns, in any order."""
        return self.predict_matrix(self.matrix(features))

    def predict_matrix(self, values: np.ndarray, *, num_threads: int = 0) -> np.ndarray:
        """Scores for a matrix whose columns are ``feature_names``."""
        from training.prior import boosted_predict

        return boosted_predict(self.booster, self.prior, values, num_threads=num_threads)

    def reasons(self, values: np.ndarray, k: int = 3, *, num_threads: int = 0) -> list[list[Reason]]:
        """The top-``k`` reasons of each row's score (`training.explain.model_reasons`)."""
        from training.explain import model_reasons

        return model_reasons(self.booster, self.prior, values, k, num_threads=num_threads)


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    model_uri: str


@dataclass
class TrainingRecord:
    """Everything a training run logs besides the model itself."""

    params: dict[str, Any]
    metrics: dict[str, float]
    feature_service: str
    data_window: dict[str, str]
    row_counts: dict[str, int]
    input_example: pd.DataFrame
    model_card: str = ""
    figures: dict[str, Figure] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def git_sha() -> str | None:
    """The repository's HEAD commit, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class Registry:
    """MLflow tracking + model registry for CXI models, bound to one Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def client(self) -> MlflowClient:
        import mlflow

        uri = self.settings.tracking_uri
        if uri.startswith("sqlite:"):
            self.settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
        return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)

    def _activate(self) -> MlflowClient:
        """Point MLflow's fluent API (start_run, log_model, load_model) at this registry's store.

        Those read process-wide URIs, so they are set on every use, not once: another Registry (another
        workspace, a test) may have moved them."""
        import mlflow

        client = self.client
        mlflow.set_tracking_uri(self.settings.tracking_uri)
        mlflow.set_registry_uri(self.settings.tracking_uri)
        return client

    @cached_property
    def experiment_id(self) -> str:
        client = self._activate()
        name = self.settings.mlflow_experiment
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        artifact_location = None
        if self.settings.mlflow_tracking_uri is None:
            self.settings.artifact_root.mkdir(parents=True, exist_ok=True)
            artifact_location = self.settings.artifact_root.as_uri()
        return str(client.create_experiment(name, artifact_location=artifact_location))

    # --- logging and registration ------------------------------------------------------------------
    def log_training(
        self,
        name: str,
        booster: lgb.Booster,
        record: TrainingRecord,
        *,
        run_name: str | None = None,
        prior: BTYDPrior | None = None,
    ) -> RegisteredVersion:
        """One run: params, metrics, plots, data window, row counts, git SHA, model card, and the model
        logged with its signature and input example, registered as a new version of ``name``: the booster
        (native flavor), or with a ``prior`` the pyfunc of both (`training.registry_pyfunc`)."""
        import mlflow
        import mlflow.lightgbm
        from mlflow.models import infer_signature

        client = self._activate()
        from training.prior import boosted_predict

        example = record.input_example[booster.feature_name()]
        values = example.to_numpy(dtype="float64", na_value=np.nan)
        signature = infer_signature(example, boosted_predict(booster, prior, values))
        tags = {
            "feature_service": record.feature_service,
            "model_name": name,
            **{f"data.{k}": v for k, v in record.data_window.items()},
            **record.tags,
        }
        sha = git_sha()
        if sha:
            tags["git_sha"] = sha
        with mlflow.start_run(experiment_id=self.experiment_id, run_name=run_name) as run:
            mlflow.set_tags(tags)
            mlflow.log_params({**record.params, "feature_service": record.feature_service})
            mlflow.log_metrics({k: float(v) for k, v in record.metrics.items()})
            mlflow.log_metrics({f"rows_{k}": float(v) for k, v in record.row_counts.items()})
            mlflow.log_dict(
                {
                    "data_window": record.data_window,
                    "row_counts": record.row_counts,
                    "features": booster.feature_name(),
                },
                "data.json",
            )
            for fig_name, fig in record.figures.items():
                mlflow.log_figure(fig, f"plots/{fig_name}.png")
            if record.model_card:
                mlflow.log_text(record.model_card, "model_card.md")
            if prior is None:
                info = mlflow.lightgbm.log_model(
                    booster,
                    name="model",
                    signature=signature,
                    input_example=example,
                    registered_model_name=name,
                    # pinned, not inferred: inference re-imports the model in a subprocess (~10 s per log)
                    pip_requirements=mlflow.lightgbm.get_default_pip_requirements(),
                )
            else:
                from training.registry_pyfunc import log_boosted

                info = log_boosted(booster, prior, signature=signature, input_example=example, name=name)
        version = str(info.registered_model_version)
        client.set_model_version_tag(name, version, "feature_service", record.feature_service)
        if prior is not None:
            client.set_model_version_tag(name, version, PRIOR_TAG, json.dumps(prior.to_dict()))
        if record.model_card:
            client.update_model_version(name, version, description=record.model_card)
        return RegisteredVersion(name, version, run.info.run_id, f"models:/{name}/{version}")

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """Add metrics to a finished run (e.g. the champion's score on this run's holdout)."""
        client = self._activate()
        for k, v in metrics.items():
            client.log_metric(run_id, k, float(v))

    def set_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        """Tag a model version (and its run), e.g. the promotion decision and its reason."""
        client = self._activate()
        mv = client.get_model_version(name, version)
        for k, v in tags.items():
            client.set_model_version_tag(name, version, k, v)
            if mv.run_id:
                client.set_tag(mv.run_id, k, v)

    # --- aliases and loading -----------------------------------------------------------------------
    def set_alias(self, name: str, version: str, alias: str = CHAMPION) -> None:
        self._activate().set_registered_model_alias(name, alias, str(version))

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version an alias points to, or None when the model or alias does not exist (cheap)."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self._activate().get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def champion_version(self, name: str) -> str | None:
        """The champion's version, or None (for hot-reload checks)."""
        return self.alias_version(name, CHAMPION)

    def metric(self, run_id: str, key: str) -> float | None:
        value = self._activate().get_run(run_id).data.metrics.get(key)
        return None if value is None else float(value)

    def load(self, name: str, alias: str = CHAMPION) -> ChampionModel:
        """Load the native LightGBM booster (and prior, if any) behind ``models:/<name>@<alias>``."""
        import mlflow.lightgbm

        version = self.alias_version(name, alias)
        if version is None:
            raise NotFoundError(f"model: no version of {name!r} has alias {alias!r}; train one first")
        mv = self._activate().get_model_version(name, version)
        uri = f"models:/{name}/{version}"  # pinned version, not the moving alias
        prior = None
        if PRIOR_TAG in mv.tags:
            from training.registry_pyfunc import load_boosted

            booster, prior = load_boosted(uri)
        else:
            booster = mlflow.lightgbm.load_model(uri)
        return ChampionModel(
            name=name,
            version=version,
            booster=booster,
            feature_names=list(booster.feature_name()),
            feature_service=mv.tags.get("feature_service", ""),
            run_id=mv.run_id or "",
            prior=prior,
        )

    def champion(self, name: str) -> ChampionModel:
        return self.load(name, CHAMPION)

    # --- models stored as plain artifact folders (e.g. a policy of several native boosters) -------
    def log_artifact_model(
        self, name: str, directory: Path, record: TrainingRecord, *, run_name: str | None = None
    ) -> RegisteredVersion:
        """One run like ``log_training``, but the model is a folder of files (logged under ``model/``) and
        registered as a new version of ``name`` pointing at that folder."""
        import mlflow

        client = self._activate()
        tags = {"feature_service": record.feature_service, "model_name": name, **record.tags}
        tags |= {f"data.{k}": v for k, v in record.data_window.items()}
        sha = git_sha()
        if sha:
            tags["git_sha"] = sha
        with mlflow.start_run(experiment_id=self.experiment_id, run_name=run_name) as run:
            mlflow.set_tags(tags)
            mlflow.log_params({**record.params, "feature_service": record.feature_service})
            mlflow.log_metrics({k: float(v) for k, v in record.metrics.items()})
            mlflow.log_metrics({f"rows_{k}": float(v) for k, v in record.row_counts.items()})
            mlflow.log_dict({"data_window": record.data_window, "row_counts": record.row_counts}, "data.json")
            mlflow.log_text(
                record.input_example.to_json(orient="records", date_format="iso"), "input_example.json"
            )
            for fig_name, fig in record.figures.items():
                mlflow.log_figure(fig, f"plots/{fig_name}.png")
            if record.model_card:
                mlflow.log_text(record.model_card, "model_card.md")
            mlflow.log_artifacts(str(directory), "model")
            source = f"{run.info.artifact_uri}/model"
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # already registered
            client.create_registered_model(name)
        mv = client.create_model_version(name, source, run_id=run.info.run_id, description=record.model_card)
        client.set_model_version_tag(name, str(mv.version), "feature_service", record.feature_service)
        return RegisteredVersion(name, str(mv.version), run.info.run_id, f"models:/{name}/{mv.version}")

    def download_artifact_model(self, name: str, dst: Path, alias: str = CHAMPION) -> tuple[str, Path]:
        """(version, local folder) of the artifact-folder model behind ``models:/<name>@<alias>``."""
        import mlflow.artifacts

        version = self.alias_version(name, alias)
        if version is None:
            raise NotFoundError(f"model: no version of {name!r} has alias {alias!r}; train one first")
        source = self._activate().get_model_version(name, version).source
        path = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst))
        return version, Path(path)

    # --- holdouts and listings (promotion CLI) ------------------------------------------------------
    def log_frame(self, run_id: str, frame: pd.DataFrame, artifact_path: str) -> None:
        """Store ``frame`` as a Parquet artifact of a finished run (e.g. its holdout rows with labels)."""
        import tempfile

        client = self._activate()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_path).name
            frame.to_parquet(path, index=False)
            parent = str(Path(artifact_path).parent)
            client.log_artifact(run_id, str(path), None if parent == "." else parent)

    def load_frame(self, run_id: str, artifact_path: str) -> pd.DataFrame | None:
        """A Parquet artifact of a run, or None when the run has none at that path."""
        import tempfile

        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        self._activate()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=artifact_path, dst_path=tmp
                )
            except (MlflowException, OSError):
                return None
            return pd.read_parquet(path)

    def delete_alias(self, name: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):
            self._activate().delete_registered_model_alias(name, alias)

    def run_of(self, name: str, version: str) -> str:
        return str(self._activate().get_model_version(name, str(version)).run_id or "")

    def versions(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every registered version (of ``name``, or of all models): name, version, aliases, run metrics."""
        client = self._activate()
        names = [name] if name else [m.name for m in client.search_registered_models()]
        out: list[dict[str, Any]] = []
        for model in names:
            aliases: dict[str, list[str]] = {}
            for alias, version in (client.get_registered_model(model).aliases or {}).items():
                aliases.setdefault(str(version), []).append(alias)
            for mv in client.search_model_versions(f"name='{model}'"):
                metrics = client.get_run(mv.run_id).data.metrics if mv.run_id else {}
                out.append(
                    {
                        "name": model,
                        "version": str(mv.version),
                        "aliases": sorted(aliases.get(str(mv.version), [])),
                        "created": int(mv.creation_timestamp or 0),
                        "run_id": mv.run_id or "",
                        "metrics": dict(metrics),
                    }
                )
        return sorted(out, key=lambda r: (r["name"], int(r["version"])))
