"""The shared walking-skeleton workspace (built once per session by the `chain` fixture in conftest.py)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from contract import Settings, Workspace

CHAIN_CUSTOMERS, CHAIN_DAYS, CHAIN_SEED = 400, 60, 11
CHAIN_HORIZON_DAYS = 14  # a 60-day log leaves room for a few 14-day training windows before the holdout


@dataclass
class Chain:
    settings: Settings
    ws: Workspace


def copy_chain(chain: Chain, root: Path, **updates: object) -> Settings:
    """A private copy of the chain's workspace and MLflow store (without its event log) for a test that
    needs its own server; ``updates`` override settings of the copy."""
    shutil.copytree(chain.ws.root, root / "ws", ignore=shutil.ignore_patterns("eventlog"))
    shutil.copytree(chain.settings.mlflow_dir, root / "mlflow")
    return chain.settings.model_copy(
        update={"workspace": root / "ws", "mlflow_dir": root / "mlflow", **updates}
    )


def start_server(
    settings: Settings, log: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the real BentoML server and wait until ready; a failure shows the server log's tail."""
    from serving import server

    port = server.free_port()
    proc = server.start(settings, host="127.0.0.1", port=port, log_path=log, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(url, proc, timeout=180)
    except server.ServerError as exc:
        server.stop(proc)
        raise AssertionError(f"{exc}\n--- server log ---\n{log.read_text()[-4000:]}") from exc
    return proc, url
