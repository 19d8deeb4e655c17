"""`cxi serve`: start the BentoML scoring service in the foreground."""

from __future__ import annotations

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
            '-d \'{"customer_id": "<id>"}\'[/cyan]  (or user_id, email, anonymous_id, device_id, ...)'
        )
        proc.wait()
    except server.ServerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        server.stop(proc)
    if proc.returncode not in (0, None, -15):
        raise typer.Exit(proc.returncode)
