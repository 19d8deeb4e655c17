"""`cxi import events|records|transactions|decisions FILE`: load CSV / JSON lines / Parquet into the workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, help="Import events, customer records, transactions or decisions.")

FileArg = Annotated[Path, typer.Argument(help="A .csv, .jsonl/.ndjson/.json (JSON lines) or .parquet file.")]
MapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--map", help="target=source_column pairs, comma-separated or repeated (e.g. user_id=cust_no)."
    ),
]
MapFileOpt = Annotated[
    Path | None, typer.Option("--map-file", help="YAML file of target: source_column pairs.")
]
SourceOpt = Annotated[
    str | None, typer.Option("--source", help="Source name stored with each row (default: file stem).")
]
TzOpt = Annotated[
    str, typer.Option("--tz", help="Time zone for timestamps without an offset (naive ISO, YYYYMMDD).")
]
DateFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--date-format",
        help="strftime format of text dates (e.g. '%d/%m/%Y %H:%M'); default: ISO 8601, YYYYMMDD, epoch,"
        " or day/month/year with the order read from the column.",
    ),
]
PhoneRegionOpt = Annotated[
    str | None,
    typer.Option(
        "--phone-region",
        help="Region (ISO 3166 alpha-2, e.g. GB, US) of phone numbers without a country code: '020 7946 0958'"
        " then hashes as '+44 20 7946 0958' does; default: $CXI_DEFAULT_PHONE_REGION, else such numbers keep"
        " their digits only.",
    ),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Any rejected row: write nothing and exit 1.")]
WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", help="Workspace folder (default: $CXI_WORKSPACE or ./workspace)."),
]


def _run(
    kind: str,
    file: Path,
    map_: list[str] | None,
    map_file: Path | None,
    source: str | None,
    tz: str,
    date_format: str | None,
    phone_region: str | None,
    strict: bool,
    workspace: Path | None,
) -> None:
    from contract.errors import ContractError
    from contract.settings import Settings
    from contract.workspace import Workspace
    from events.importers import import_file
    from events.readers import load_mapping, parse_map

    console = Console()
    try:
        mapping = load_mapping(map_file) if map_file else {}
        mapping.update(parse_map(map_ or []))
        settings = Settings(workspace=workspace) if workspace else Settings()
        report = import_file(
            Workspace(settings.workspace),
            kind,
            file,
            mapping=mapping or None,
            source=source,
            strict=strict,
            tz=tz,
            date_format=date_format,
            phone_region=phone_region or settings.default_phone_region,
        )  # type: ignore[arg-type]
    except ContractError as exc:
        console.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from exc

    summary = Table(title=f"cxi import {kind}: {file.name} -> {settings.workspace}")
    for col in ("rows", "accepted", "duplicates", "quarantined", "seconds"):
        summary.add_column(col, justify="right")
    summary.add_row(
        str(report.rows),
        str(report.accepted),
        str(report.duplicates),
        str(report.quarantined),
        f"{report.seconds:.2f}",
    )
    console.print(summary)
    if report.reasons:
        reasons = Table(
            title="quarantined by reason" + ("" if report.written else " (strict: nothing written)")
        )
        reasons.add_column("field: reason")
        reasons.add_column("rows", justify="right")
        for reason, count in report.reasons.items():
            reasons.add_row(reason, str(count))
        console.print(reasons)
    if not report.ok:
        raise typer.Exit(1)


_HELP = {
    "events": "Behavioural events (page views, purchases, logins, ...); raw email/phone are hashed and dropped.",
    "records": "Customer records (CRM, loyalty, store); columns beyond the contract are kept as extra identifiers.",
    "transactions": "A transaction history (customer_id, occurred_at, amount, ...), imported as purchase events.",
    "decisions": "Logged next-best-action decisions (decision_id, customer_id, action, propensity, reward + context).",
}


def _command(kind: str):  # one typer command per kind; same options, different table
    def command(
        file: FileArg,
        map_: MapOpt = None,
        map_file: MapFileOpt = None,
        source: SourceOpt = None,
        tz: TzOpt = "UTC",
        date_format: DateFormatOpt = None,
        phone_region: PhoneRegionOpt = None,
        strict: StrictOpt = False,
        workspace: WorkspaceOpt = None,
    ) -> None:
        _run(kind, file, map_, map_file, source, tz, date_format, phone_region, strict, workspace)

    command.__doc__ = _HELP[kind]
    command.__name__ = kind
    return command


for _kind in _HELP:
    app.command(_kind)(_command(_kind))
