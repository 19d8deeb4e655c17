"""`cxi identity link`: probabilistic linkage of plain customer-record files into customers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def link(
    records: Annotated[
        list[Path],
        typer.Option(
            "--records",
            "-r",
            help="Record file (CSV, JSON lines or Parquet); repeat for several. "
            "Each file's source defaults to its name.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for clusters.parquet and pairs.parquet.")],
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="Column mapping target=source_column[,target=source...] (repeatable)."),
    ] = None,
    threshold: Annotated[
        float, typer.Option(help="Match probability at which two records are linked.")
    ] = 0.5,
    mode: Annotated[
        str,
        typer.Option(help="auto (supervised when deterministic labels suffice), supervised or unsupervised."),
    ] = "auto",
    link_only: Annotated[
        bool,
        typer.Option("--link-only", help="Only link records across sources (no deduplication within one)."),
    ] = False,
    strict: Annotated[
        bool, typer.Option(help="Fail on any field that breaks the contract (default: clear it).")
    ] = False,
    date_format: Annotated[
        str | None,
        typer.Option(
            "--date-format",
            help="strftime format of dates of birth (e.g. '%d/%m/%Y'); default: ISO, YYYYMMDD or "
            "day/month/year with the order read from the column.",
        ),
    ] = None,
    phone_region: Annotated[
        str | None,
        typer.Option(
            "--phone-region",
            help="Region (ISO 3166 alpha-2, e.g. GB, US) of phone numbers without a country code, read to "
            "E.164 as '+44 20 7946 0958' is; default: $CXI_DEFAULT_PHONE_REGION, else their digits only.",
        ),
    ] = None,
    max_block_size: Annotated[int, typer.Option(help="Skip blocks with more records than this.")] = 500,
    window: Annotated[
        int,
        typer.Option(
            help="Blocks bigger than this pair each record only with its window-1 neighbours in name order "
            "(sorted neighbourhood: candidates grow linearly with records); 0 = all pairs of every block."
        ),
    ] = 5,
) -> None:
    """Link customer records across files: blocking, comparisons, a match model (calibrated LightGBM on
    deterministic labels, or Fellegi–Sunter by EM) and constrained clustering. Writes clusters
    (source, record_id -> customer_id) and pairs (match probabilities with per-comparison evidence)."""
    import time

    from contract.errors import CXIError

    started = time.perf_counter()
    try:
        from contract.settings import Settings
        from events.readers import parse_map
        from identity.match import RecordMatcher, read_records

        frame, read = read_records(
            records,
            parse_map(map_ or []),
            strict=strict,
            date_format=date_format,
            phone_region=phone_region or Settings().default_phone_region,
        )
        read_s = time.perf_counter() - started
        matcher = RecordMatcher(
            mode=mode,
            threshold=threshold,
            link_only=link_only,  # type: ignore[arg-type]
            max_block_size=max_block_size,
            window=window or None,
        )
        result = matcher.link(frame)
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    out.mkdir(parents=True, exist_ok=True)
    result.clusters.to_parquet(out / "clusters.parquet", index=False)
    result.pairs.to_parquet(out / "pairs.parquet", index=False)
    stages = {
        "read": read_s,
        **{k.removesuffix("_s"): v for k, v in result.stats.items() if k.endswith("_s")},
    }

    table = Table(title=f"records linked ({result.mode})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in (
        *((f"records: {src}", n) for src, n in read.rows.items()),
        *((f"cleared: {reason}", n) for reason, n in read.cleared.items()),
        ("candidate pairs", result.stats["candidates"]),
        ("linked pairs", result.stats["linked_pairs"]),
        ("refused (two user_ids)", result.stats["refused_pairs"]),
        ("customers", result.stats["customers"]),
        ("seconds", f"{time.perf_counter() - started:.2f}"),
    ):
        table.add_row(name, str(value))
    console.print(table)
    console.print("seconds by stage: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()), soft_wrap=True)
    skipped = [b for b in result.stats["blocking"] if b["skipped_blocks"]]  # type: ignore[union-attr]
    for b in skipped:
        console.print(
            f"[yellow]blocking[/yellow] {b['rule']}: skipped {b['skipped_blocks']} block(s) "
            f"over {max_block_size} records ({b['skipped_pairs']} pairs)"
        )
    windowed = sum(int(b["windowed_blocks"]) for b in result.stats["blocking"])  # type: ignore[union-attr]
    if windowed:
        console.print(f"blocking: {windowed} block(s) over {window} records paired by sorted neighbourhood")
    console.print(f"wrote {out / 'clusters.parquet'} and {out / 'pairs.parquet'}")
