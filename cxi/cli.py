"""The `cxi` command line: a thin shell over the library; each noun is a sub-app in `cxi.commands`."""

from __future__ import annotations

import logging

import typer

from cxi.commands import (
    destinations,
    features,
    identity,
    imports,
    models,
    nba,
    pipeline,
    replay,
    score,
    segments,
    serve,
    simulate,
    train,
)

app = typer.Typer(
    name="cxi",
    help="CXI: predictive customer intelligence. events -> identity -> features -> training -> serving.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _main() -> None:
    """Library warnings (a missing control action, a dropped column, ...) shown once, on stderr."""
    from rich.console import Console
    from rich.logging import RichHandler

    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False, markup=False)
    handler.setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler])


app.add_typer(imports.app, name="import", help="Import events, customer records, transactions or decisions.")
app.command("simulate", help="Simulate a brand (events, records, transactions, decisions + hidden truth).")(
    simulate.simulate
)
app.add_typer(identity.app, name="identity", help="Resolve identifiers into persistent customer profiles.")
app.add_typer(
    features.app, name="features", help="Feast feature store: apply definitions, build, materialize."
)
app.add_typer(train.app, name="train", help="Train models from Feast features and register them in MLflow.")
app.add_typer(models.app, name="models", help="Registered models: list them, promote a challenger.")
app.add_typer(nba.app, name="nba", help="Next-best-action: recommend offers with the registered policy.")
app.add_typer(
    segments.app, name="segments", help="Predictive segments: build, list (changes, exclusions), export."
)
app.add_typer(
    destinations.app, name="destinations", help="Webhook destinations: deliveries, dead letters, test pings."
)
app.command("score", help="Score every customer known at a date with a model's champion, to CSV or Parquet.")(
    score.score
)
app.command("serve", help="Start the BentoML scoring service.")(serve.serve)
app.command(
    "replay", help="Rebuild identity and offline/online features from the durable event log (recovery)."
)(replay.replay)
app.command(
    "run", help="The whole chain on the embedded default: simulate -> stitch -> features -> train -> serve."
)(pipeline.run)


if __name__ == "__main__":
    app()
