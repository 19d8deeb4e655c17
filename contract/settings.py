"""All configuration in one typed settings object (environment variables ``CXI_*`` or a ``.env`` file).

Nothing here touches the file system at import; paths are resolved when a component asks for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
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
    feature_build_part_rows: int = Field(
        200_000,
        ge=1,
        description="Snapshot rows per feature query in the batch job: customers are split into parts of about "
        "this many (customer, day) rows, so memory follows the part (~4 kB a row at peak), not customers x days.",
    )
    live_feature_max_age_s: float = Field(
        3600.0,
        ge=0,
        description="A read recomputes an online row older than this (expired short windows are recomputed "
        "at any age); 0: every read recomputes.",
    )
    live_refresh_seconds: float = Field(
        3600.0, gt=0, description="The live sweeper recomputes online rows older than this (days drift)."
    )
    live_sweep_seconds: float = Field(
        30.0, gt=0, description="How often the live sweeper expires short windows and refreshes old rows."
    )
    live_write_behind_seconds: float = Field(
        3.0,
        ge=0,
        description="The real-time engine writes recomputed rows to the Feast online store this often, in "
        "bulk (latest row per customer), at most a tenth of the time under load; the service's reads serve "
        "rows not yet written from memory, so only other readers of the Feast store see them up to this much "
        "later. Each write is a customer's whole row, converted value by value by Feast (the writer child's "
        "CPU, on the cores the service shares): a customer touched several times in an interval is written "
        "once (at 1,000 events/s over 500 customers, 3 s instead of 1 s gave p99 event -> visible score "
        "124.8 -> 49.6 and 61.8 -> 52.0 ms, p90 36.6 -> 32.6 and 34.8 -> 32.5, two interleaved pairs). "
        "0: write at once.",
    )
    live_write_process: bool = Field(
        True,
        description="The write-behind's Feast writes run in a child process (features/write_process.py) at a "
        "lower CPU priority, so Feast's per-value conversions never hold the serving process's interpreter. "
        "False: a thread of the serving process writes them, paced to a tenth of the time.",
    )
    live_hooks_seconds: float = Field(
        1.0,
        ge=0,
        description="Live segments and webhooks (the engine's hooks) run at most this often, over every batch "
        "applied since their last run: their cost per run is mostly fixed (measured while they ran in the serving "
        "process, at 1,000 events/s: 0.2 s gave p99 event -> visible score 66-75 ms, 1 s gave 61-68 ms, three "
        "interleaved pairs). Segment entries and webhooks follow within about this long. "
        "Scores never wait for them; `wait=settled` requests do. 0: back to back.",
    )
    live_segments_process: bool = Field(
        True,
        description="Live segments and webhook queuing (the engine's hooks) run in a child process "
        "(serving/segments_process.py) at a lower CPU priority, so their runs never hold the serving process's "
        "interpreter; False: on a thread of the serving process.",
    )
    live_state_max_instants: int = Field(
        500_000,
        ge=0,
        description="Per-(customer, instant) feature state the live path keeps so a new event costs O(its own "
        "work), not O(the customer's history) (features/live_state.py; ~250 bytes per instant). Past this many, "
        "the least recently touched customers are dropped and rebuilt from their events when next touched.",
    )
    live_sweep_max_customers: int = Field(
        1_000,
        ge=1,
        description="Old rows refreshed per sweep at most (expired windows are always swept): the refresh of "
        "rows from the batch job after a start is spread over sweeps instead of competing with live updates "
        "(reads are exact meanwhile).",
    )

    live_anonymous_match: Literal["off", "auto", "on"] = Field(
        "off",
        description="Probabilistic matching of live anonymous profiles (identity/live_match.py): the real-time "
        "engine trains the anonymous matcher on the workspace at start and, every live_match_seconds, links the "
        "anonymous profiles that grew to known customers. 'auto': only when its held-out precision meets the "
        "resolver's target (0.99); 'on': always; 'off' (default, as `cxi identity resolve` is deterministic "
        "unless asked): never.",
    )
    live_match_seconds: float = Field(
        30.0,
        gt=0,
        description="How often the engine matches the anonymous profiles touched since the last pass.",
    )

    # --- identifiers (contract/normalize.py) ---
    default_phone_region: str | None = Field(
        None,
        description="Region (ISO 3166 alpha-2: GB, US, FR, ...) of phone numbers written without a country "
        "code: with it, '020 7946 0958' and '+44 20 7946 0958' normalise to the same E.164 number and hash. "
        "Unset, such numbers keep their digits only (numbers with a '+' or '00' country code are E.164 "
        "either way). The default of `cxi import --phone-region` and `cxi identity link --phone-region`; "
        "`cxi identity resolve` blocks the junk phones in this region's form too.",
    )

    # --- churn definition ---
    churn_horizon_days: int = Field(30, ge=1, description="Churned = no activity within this many days.")
    churn_activity: str = Field(
        "any", pattern="^(any|purchase)$", description="What counts as activity: any event, or a purchase."
    )
    churn_prior: str = Field(
        "mbgnbd",
        pattern="^(mbgnbd|none)$",
        description="Where the churn model's boosting starts: `mbgnbd`, a buy-till-you-die model (MBG/NBD) of "
        "each customer's activity timing fitted on the training rows (`training.prior`), so the trees learn "
        "only what it misses and scores extrapolate to older customers; `none`, a constant.",
    )

    # --- next-best-action ---
    nba_control_action: str = Field(
        "no_offer",
        min_length=1,
        description="Name of the control (no-offer) action in the logged decisions: NBA uplift is measured "
        "against it; `cxi train nba --control NAME` overrides it. A log without it trains, but has no uplift.",
    )

    # --- serving ---
    host: str = "127.0.0.1"
    port: int = 3000
    access_log: bool = Field(False, description="Per-request access logs (off: they halve throughput).")

    # --- real-time engine (serving/realtime.py) ---
    realtime: bool = Field(
        True, description="Serve POST /v1/events and live profiles (the real-time engine)."
    )
    realtime_max_pending_rows: int = Field(
        50_000, ge=1, description="Logged events waiting to be applied before ingestion answers 429."
    )
    realtime_visible_timeout_seconds: float = Field(
        10.0, gt=0, description="How long a request waiting for visibility may wait before a 503."
    )

    # --- segments and consent (segments/) ---
    segments_file: Path | None = Field(
        None, description="Segment definitions YAML (default: the shipped segments/defaults.yaml)."
    )
    consent_default_granted: list[str] = Field(
        ["analytics", "personalization"],
        description="Purposes granted when nothing is known about a customer's consent for them; the others "
        "(marketing, advertising) are denied until given. JSON list in CXI_CONSENT_DEFAULT_GRANTED.",
    )

    # --- activation (webhook destinations) ---
    destinations_file: Path | None = Field(
        None, description="YAML of webhook destinations (default: <workspace>/destinations.yaml)."
    )
    delivery_concurrency: int = Field(4, ge=1, le=64, description="Destinations delivered to in parallel.")

    # --- the service process's cyclic garbage collector (serving/service.py) ---
    gc_full_threshold: int = Field(
        100,
        ge=1,
        description="Full collections after this many middle-generation ones (Python's default: 10). Each "
        "stops every thread for ~50-100 ms under load; rarer ones keep them out of the latency tail.",
    )
    gc_refreeze_seconds: float = Field(
        30.0,
        ge=0,
        description="Freeze the collector's survivors again this long after start, once first traffic has "
        "loaded what stays (modules imported on first use, caches); 0: only the freeze after loading.",
    )

    # --- durable event log (real-time ingestion, events/log.py) ---
    eventlog_max_pending: int = Field(
        20_000, ge=1, description="Rows waiting for the log writer before appends answer Overloaded."
    )
    eventlog_retry_after_s: float = Field(
        0.5, gt=0, description="Retry-After suggested to clients when the log is overloaded (seconds)."
    )
    eventlog_segment_bytes: int = Field(
        16 * 2**20, ge=4096, description="Event log segment size before a new segment file is started."
    )
    eventlog_commit_interval_ms: float = Field(
        0.0, ge=0, description="Extra wait before a group commit to gather more appends (0: none)."
    )

    @field_validator("default_phone_region")
    @classmethod
    def _phone_region(cls, v: str | None) -> str | None:
        from contract.normalize import check_phone_region

        return check_phone_region(v or None)  # an empty CXI_DEFAULT_PHONE_REGION= is no region

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
