"""All configuration in one typed settings object (environment variables ``CXI_*`` or a ``.env`` file).

Nothing here touches the file system at import; paths are resolved when a component asks for them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The repository (or installed source tree) root: the folder that holds `features/`, `mlflow/`, ...
REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CXI_", env_file=".env", extra="ignore")

    workspace: Path = Field(Path("workspace"), description="Directory holding every table CXI writes.")

    # --- tracking / registry (MLflow on SQLite under mlflow/) ---
    mlflow_dir: Path = Field(REPO_ROOT / "mlflow", description="Local MLflow store: SQLite db and artifacts.")
    mlflow_tracking_uri: str | None = Field(None, description="Overrides sqlite:///<mlflow_dir>/mlflow.db.")
    mlflow_experiment: str = "cxi"

    # --- feature store ---
    feast_repo: Path = Field(
        REPO_ROOT / "features" / "repo", description="Feast repository (definitions only)."
    )
    feature_snapshot_days: int = Field(1, ge=1, description="Cadence of offline feature snapshots (days).")

    # --- churn definition ---
    churn_horizon_days: int = Field(30, ge=1, description="Churned = no activity within this many days.")
    churn_activity: str = Field(
        "any", pattern="^(any|purchase)$", description="What counts as activity: any event, or a purchase."
    )

    # --- serving ---
    host: str = "127.0.0.1"
    port: int = 3000
    access_log: bool = Field(False, description="Per-request access logs (off: they halve throughput).")

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{(self.mlflow_dir / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return (self.mlflow_dir / "artifacts").resolve()

    @property
    def feast_dir(self) -> Path:
        """Workspace folder for the Feast registry, online store and offline feature tables."""
        return (self.workspace / "feast").resolve()
