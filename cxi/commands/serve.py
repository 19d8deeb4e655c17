"""`cxi serve`: start the BentoML scoring service in the foreground."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def serve(
    workspace: Annotated[
        Path | None, typer.Option(envvar="CXI_WORKSPACE", help="Workspace directory.")
    ] = None,
    host: Annotated[str | None, typer.Option(envvar="CXI_HOST", help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(envvar="CXI_PORT", help="Port to listen on.")] = None,
) -> None:
    """Serve churn scores over HTTP (POST /v1/scores/churn) until Ctrl-C."""
    from contract.settings import Settings
    from serving import server

    overrides = {
        k: v for k, v in {"workspace": workspace, "host": host, "port": port}.items() if v is not None
    }
    settings = Settings(**overrides)
    url = f"http://{settings.host}:{settings.port}"
    proc = server.start(settings)
    # the server runs in its own session: make SIGTERM/SIGHUP unwind through `finally` so it is stopped too
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    try:
        server.wait_ready(url, proc, timeout=300, path="/livez")
        console.print(f"Service up: [cyan]{url}[/cyan]  (OpenAPI UI at {url}/, health {url}/readyz)")
        if not server.is_ready(url):
            console.print(
                "[yellow]Not ready: scores answer 503 (with the reason) until a churn champion is registered "
                "and features are materialized (`cxi train churn`, `cxi features materialize`).[/yellow]"
            )
        console.print(
            f"Try: [cyan]curl -s -X POST {url}/v1/scores/churn -H 'content-type: application/json' "
            f"-d '{_example_body(settings.workspace)}'[/cyan]  (any one of customer_id, user_id, email, "
            "anonymous_id, device_id, ...)"
        )
        code = proc.wait()
        console.print(f"[red]server exited with code {code}[/red]")
        raise typer.Exit(code or 1)
    except server.ServerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        server.stop(proc)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _example_body(workspace: Path) -> str:
    """A real identifier from the workspace's identity map when there is one, else a placeholder."""
    try:
        from contract.workspace import Workspace
        from cxi.pipeline import example_identifier

        body = example_identifier(Workspace(workspace))
    except Exception:  # only a hint for the user; never fail the command over it
        body = {}
    return json.dumps(body or {"customer_id": "<id>"})
