"""`cxi identity resolve | lookup | explain | unmerge | health`: stitch identifiers into customer profiles,
look them up, explain and undo merges, and check the graph's health."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cxi.commands.link import link

app = typer.Typer(no_args_is_help=True, help="Resolve identifiers into persistent customer profiles.")
console = Console()
app.command("link", help="Link plain customer-record files probabilistically (writes clusters and pairs).")(
    link
)

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", help="Workspace directory (default: CXI_WORKSPACE or ./workspace)."),
]


def _workspace(path: Path | None):  # -> contract.Workspace (imported lazily)
    from contract import Settings, Workspace

    return Workspace(path if path is not None else Settings().workspace)


def _phone_region() -> str | None:
    """The region raw phones without a country code are read in (``CXI_DEFAULT_PHONE_REGION``)."""
    from contract import Settings

    return Settings().default_phone_region


@app.command()
def resolve(
    workspace: WorkspaceOpt = None,
    probabilistic: Annotated[
        bool,
        typer.Option(
            "--probabilistic/--no-probabilistic",
            help="Also link anonymous profiles and records with the trained matchers (each falls back to "
            "deterministic, with the reason printed, when the data gives it too few labelled pairs).",
        ),
    ] = False,
    precision_target: Annotated[
        float,
        typer.Option(
            min=0.5,
            max=1.0,
            help="Least precision of the matchers' links, estimated on held-out labelled pairs: it sets the "
            "record threshold ('auto') and gates the anonymous matcher ('auto').",
        ),
    ] = 0.99,
    record_threshold: Annotated[
        str,
        typer.Option(
            help="Record match probability to link at, or 'auto' (chosen under --precision-target)."
        ),
    ] = "auto",
    anonymous: Annotated[
        str,
        typer.Option(
            help="Anonymous-profile links: auto (only when they meet --precision-target), on or off."
        ),
    ] = "auto",
) -> None:
    """Stitch events and records into customer profiles; writes identity_map and identity_guard_log."""
    from pydantic import ValidationError

    from contract import Settings
    from contract.errors import CXIError
    from identity import IdentityResolver, MatchConfig, StitchConfig

    try:
        match = MatchConfig(
            precision_target=precision_target,
            record_threshold=record_threshold if record_threshold == "auto" else float(record_threshold),
            anonymous=anonymous,  # type: ignore[arg-type]
        )
    except (ValueError, ValidationError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    try:
        config = StitchConfig.from_settings(Settings())  # junk phones blocked in the imports' form too
        report = IdentityResolver(_workspace(workspace), config, match=match).resolve(
            probabilistic=probabilistic
        )
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    for note in report.notes:
        console.print(note)
    table = Table(title="identity resolved", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in (
        ("identifiers", report.identifiers),
        ("customers", report.customers),
        ("known customers (user_id)", report.known_customers),
        ("anonymous-only", report.anonymous_only),
        ("largest profile (identifiers)", report.largest_cluster),
        ("edges", report.edges),
        ("probabilistic links", report.probabilistic_edges),
        *((f"guard: {g}", n) for g, n in sorted(report.guard_firings.items())),
        ("seconds", f"{report.seconds:.2f}"),
    ):
        table.add_row(name, str(value))
    console.print(table)


@app.command()
def lookup(
    identifier_type: Annotated[
        str,
        typer.Argument(
            help="user_id, email_sha256, phone_sha256, loyalty_id, device_id, anonymous_id, "
            "record, or raw 'email' / 'phone' (hashed here)."
        ),
    ],
    value: Annotated[str, typer.Argument(help="The identifier's value.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Print the customer an identifier belongs to, with all of that customer's identifiers."""
    from contract.errors import CXIError
    from identity import IdentityIndex

    try:
        index = IdentityIndex.load(_workspace(workspace))
        if identifier_type == "email":
            customer = index.customer_for_email(value)
        elif identifier_type == "phone":
            customer = index.customer_for_phone(value, _phone_region())
        else:
            customer = index.customer_for(identifier_type, value)
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if customer is None:
        console.print(f"[yellow]no customer[/yellow] is known by {identifier_type} {value!r}")
        raise typer.Exit(1)
    table = Table(title=f"customer {customer}")
    table.add_column("identifier_type")
    table.add_column("identifier_value")
    for t, v in index.identifiers_of(customer):
        table.add_row(t, v)
    console.print(table)


@app.command()
def explain(
    key: Annotated[str, typer.Argument(help="A customer_id (or alias id), or an identifier as TYPE:VALUE.")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Why a customer is one customer: identifiers, edges (rule, evidence), guard firings, merge history."""
    from contract.errors import CXIError
    from identity.explain import explain as run_explain

    try:
        ex = run_explain(_workspace(workspace), key)
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    aliases = f" (aliases: {', '.join(ex.aliases)})" if ex.aliases else ""
    ids = Table(title=f"customer {ex.customer_id}{aliases}: {len(ex.identifiers)} identifiers")
    ids.add_column("identifier_type")
    ids.add_column("identifier_value")
    for t, v in ex.identifiers:
        ids.add_row(t, v)
    console.print(ids)
    edges = Table(title="edges")
    for col in ("a", "b", "rule", "first_ts", "probability", "cut"):
        edges.add_column(col)
    for r in ex.edges.to_pylist():
        p = "" if r["probability"] is None else f"{r['probability']:.3f}"
        edges.add_row(
            f"{r['a_type']}:{r['a_value']}",
            f"{r['b_type']}:{r['b_value']}",
            r["rule"],
            str(r["first_ts"]),
            p,
            r["cut"] or "",
        )
    console.print(edges)
    guards = Table(title="guard firings")
    for col in ("guard", "identifier", "detail"):
        guards.add_column(col)
    for r in ex.guards.to_pylist():
        guards.add_row(r["guard"], f"{r['identifier_type']}:{r['identifier_value']}", r["detail"])
    console.print(guards)
    hist = Table(title="merge / split history")
    for col in ("at", "action", "survivor", "absorbed", "rule", "actor"):
        hist.add_column(col)
    for r in ex.history.to_pylist():
        hist.add_row(str(r["at"]), r["action"], r["survivor"], r["absorbed"], r["rule"], r["actor"])
    console.print(hist)


@app.command()
def unmerge(
    customer_id: Annotated[str, typer.Argument(help="The customer to split (an alias id resolves).")],
    identifier: Annotated[
        list[str] | None,
        typer.Option(
            "--identifier", "-i", help="Detach this TYPE:VALUE (repeatable); default: undo the last merge."
        ),
    ] = None,
    actor: Annotated[str, typer.Option(help="Who asks (recorded in the audit).")] = "cli",
    workspace: WorkspaceOpt = None,
) -> None:
    """Split a cluster back, pin the split (never-link) and name the customers whose features to rebuild."""
    from contract import Settings
    from contract.errors import ContractError, CXIError
    from identity import IdentityResolver, StitchConfig

    pairs: list[tuple[str, str]] = []
    for item in identifier or []:
        if ":" not in item:
            console.print(f"[red]error:[/red] --identifier: expected TYPE:VALUE (got {item!r})")
            raise typer.Exit(1)
        t, v = item.split(":", 1)
        pairs.append((t, v))
    try:
        resolver = IdentityResolver(_workspace(workspace), StitchConfig.from_settings(Settings()))
        result = resolver.unmerge(customer_id, pairs or None, actor=actor)
    except (CXIError, ContractError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"split {result.detached} identifiers off {result.customer_id} into {', '.join(result.split_off) or '-'}"
    )
    console.print("rebuild features for: " + " ".join(result.affected_customer_ids))


@app.command()
def health(
    giant: Annotated[int, typer.Option(help="A cluster with more identifiers is giant.")] = 50,
    workspace: WorkspaceOpt = None,
) -> None:
    """Cluster sizes, giant clusters, bridge identifiers and guard firings; warns past the thresholds."""
    from contract.errors import CXIError
    from identity.health import HealthConfig
    from identity.health import health as run_health

    try:
        report = run_health(_workspace(workspace), HealthConfig(giant_cluster_size=giant))
    except CXIError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    sizes = Table(title=f"{report.customers} customers, {report.identifiers} identifiers")
    sizes.add_column("identifiers per customer")
    sizes.add_column("customers", justify="right")
    for bucket, n in report.size_distribution.items():
        sizes.add_row(bucket, str(n))
    console.print(sizes)
    other = Table(title="graph health")
    other.add_column("measure")
    other.add_column("value", justify="right")
    other.add_row(f"giant clusters (> {giant})", str(len(report.giant_clusters)))
    other.add_row("bridge identifiers", f"{len(report.bridges)} of {report.searched_identifiers} searched")
    for g, n in sorted(report.guard_firings.items()):
        other.add_row(f"guard: {g}", str(n))
    console.print(other)
    if report.bridges:
        br = Table(title="bridge identifiers (first 20)")
        for col in ("customer_id", "identifier_type", "identifier_value"):
            br.add_column(col)
        for row in report.bridges[:20]:
            br.add_row(*row)
        console.print(br)
    for w in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
