"""Start, probe and stop the BentoML server as a child process (used by `cxi serve`, `cxi run` and tests)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from contract.errors import CXIError
from contract.settings import REPO_ROOT, Settings

SERVICE = "serving.service:CXIService"


class ServerError(CXIError):
    """The scoring server exited or never became ready."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_env(settings: Settings) -> dict[str, str]:
    """The child's environment: settings as ``CXI_*`` variables, BentoML access logs per `settings.access_log`."""
    env = dict(os.environ)
    env["CXI_WORKSPACE"] = str(Path(settings.workspace).resolve())
    env["CXI_MLFLOW_DIR"] = str(Path(settings.mlflow_dir).resolve())
    env["CXI_FEAST_REPO"] = str(Path(settings.feast_repo).resolve())
    if settings.mlflow_tracking_uri:
        env["CXI_MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    overrides = json.loads(env.get("BENTOML_CONFIG_OVERRIDES") or "{}")
    overrides.setdefault("services", {}).setdefault("cxi", {}).setdefault("logging", {}).setdefault(
        "access", {}
    )
    overrides["services"]["cxi"]["logging"]["access"]["enabled"] = settings.access_log
    env["BENTOML_CONFIG_OVERRIDES"] = json.dumps(overrides)
    env["BENTOML_DO_NOT_TRACK"] = "True"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def start(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Launch ``bentoml serve`` for the CXI service; returns at once (see `wait_ready`).

    ``env``: extra environment for the child, e.g. ``CXI_SERVING_RELOAD_SECONDS``."""
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        host or settings.host,
        "--port",
        str(port or settings.port),
        "--working-dir",
        str(REPO_ROOT),
    ]
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - the child owns the handle
    try:
        return subprocess.Popen(
            cmd,
            env={**server_env(settings), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
    finally:
        if out:
            out.close()


def wait_ready(
    url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 120.0, path: str = "/readyz"
) -> None:
    """Poll ``path`` until 200; ServerError if the process exits or time runs out (with the last answer)."""
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"server exited with code {proc.returncode} before it was ready")
        try:
            r = httpx.get(f"{url}{path}", timeout=2.0)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text.strip()[:300]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise ServerError(f"server at {url} not ready after {timeout:.0f}s (last: {last})")


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Stop the server and its workers (its own process group), politely first."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass


def is_ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/readyz", timeout=5.0).status_code == 200
    except httpx.HTTPError:
        return False
