"""Feast online writes in a child process, so they never hold the serving process's interpreter.

Feast's `write_to_online_store` converts every value to a protobuf in Python (~0.5 ms a row per view) and
holds the interpreter while it does. In the serving process that time is taken from ingestion and scoring:
at 1,000 events/s, turning the write-behind off lowered p99 event -> visible score from 67-79 ms to 42-46 ms
(two interleaved pairs; the diagnostic behind this module). `WriterProcess` runs the same
`FeatureRepo.write_views` in a child (``python -m features.write_process``), at a lower CPU priority; the
parent's writer thread only hands it Arrow batches and waits for each acknowledgement with the interpreter
released.

The child is a `contract.child` helper: each request is one Arrow IPC stream (the rows, one `_at` column with
each row's instant), answered ``ok`` once every view is written and committed. It says ``ready`` once Feast is
imported and the store opened, and exits at end of input only (not before the parent's last flush). The online
store is switched to SQLite's WAL journal, so the parent's reads never wait for the child's write transactions.
"""

from __future__ import annotations

import contextlib
import gc
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from contract.child import Child, ChildError, Handler, exit_now, serve
from contract.settings import Settings

if TYPE_CHECKING:
    from features.store import FeatureRepo

_AT = "_at"

#: The writer child failed or is gone; the rows it was given are not known to be written.
WriterProcessError = ChildError


class WriterProcess:
    """A child process that writes feature rows (every view's columns) to the Feast online store."""

    def __init__(
        self, settings: Settings, answer_timeout_s: float = 60.0, ready_timeout_s: float = 300.0
    ) -> None:
        self.child = Child(
            "features.write_process",
            settings,
            what="online writer process",
            answer_timeout_s=answer_timeout_s,
            ready_timeout_s=ready_timeout_s,
        )

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def alive(self) -> bool:
        return self.child.alive

    def write(self, rows: pd.DataFrame, stamps: pd.Series) -> None:
        """Write `rows` (one per customer, every view's columns) with each row's instant `stamps`; returns once
        the child has committed them. Raises `WriterProcessError` when it could not."""
        table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
        table = table.append_column(_AT, pa.array(stamps.dt.tz_convert("UTC"), pa.timestamp("us", tz="UTC")))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
        self.child.request(sink.getvalue().to_pybytes())

    def close(self, timeout: float = 10.0) -> None:
        """End the child's input and wait for it to exit (killed after `timeout` seconds)."""
        self.child.close(timeout)


def use_wal(repo: FeatureRepo) -> None:
    """Switch the online store's SQLite file to the WAL journal (persistent in the file): readers in another
    process then read the last commit instead of waiting for a write transaction to end."""
    import sqlite3

    path = repo.settings.feast_dir / "online.db"
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA journal_mode=WAL")


def _start(settings: Settings) -> Handler:
    from features.store import FeatureRepo

    repo = FeatureRepo(settings)
    repo.settings.feast_dir.mkdir(parents=True, exist_ok=True)
    use_wal(repo)
    _ = repo.store  # imports Feast and loads the registry before the first request
    gc.freeze()  # Feast's import-time objects: full collections walked them for ~115 ms every few seconds

    def write(body: bytes) -> None:
        table = pa.ipc.open_stream(body).read_all()
        repo.write_views(table.drop_columns([_AT]).to_pandas(), table.column(_AT).to_pandas())

    return write


def main() -> None:
    """The child's entry point."""
    exit_now(serve(_start, name="cxi-online-writer"))


if __name__ == "__main__":
    main()
