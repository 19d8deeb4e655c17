"""The workspace: every table CXI writes, as Parquet datasets queried with DuckDB.

A table is a folder of Parquet parts (``tables/<name>/<part>.parquet``); appends add a part atomically
(write to a temp name, then rename), so a crash never leaves a half-written part visible. Readers see a
table through DuckDB views. The ``truth/`` folder (simulator ground truth) is never read by the pipeline.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from contract.errors import WorkspaceError


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new, renamed or removed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Workspace:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    # --- layout ---
    def table_dir(self, name: str) -> Path:
        return self.root / "tables" / name

    @property
    def truth_dir(self) -> Path:
        return self.root / "truth"

    def exists(self, name: str) -> bool:
        d = self.table_dir(name)
        return d.is_dir() and any(d.glob("*.parquet"))

    def tables(self) -> list[str]:
        base = self.root / "tables"
        return (
            sorted(p.name for p in base.iterdir() if p.is_dir() and any(p.glob("*.parquet")))
            if base.is_dir()
            else []
        )

    def glob(self, name: str) -> str:
        return str(self.table_dir(name) / "*.parquet")

    # --- writes ---
    def append(self, name: str, table: pa.Table, part: str | None = None) -> Path | None:
        """Add one part to a table. Empty tables write nothing. Returns the part's path."""
        if table.num_rows == 0:
            return None
        d = self.table_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        part = part or uuid.uuid4().hex
        final = d / f"{part}.parquet"
        tmp = d / f".{part}.parquet.tmp"
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    def replace(self, name: str, table: pa.Table) -> Path:
        """Swap a whole derived table for a new one (e.g. the identity map), atomically per part."""
        d = self.table_dir(name)
        old = list(d.glob("*.parquet")) if d.is_dir() else []
        path = self.append(name, table) if table.num_rows else None
        for p in old:
            if p != path:
                p.unlink()
        if path is None:  # an empty result still needs a schema for readers
            d.mkdir(parents=True, exist_ok=True)
            path = d / f"{uuid.uuid4().hex}.parquet"
            pq.write_table(table, path)
        return path

    # --- reads ---
    def read(self, name: str, columns: list[str] | None = None) -> pa.Table:
        if not self.exists(name):
            raise WorkspaceError(f"table {name!r} is empty or missing in workspace {self.root}")
        return pq.ParquetDataset(str(self.table_dir(name))).read(columns=columns)

    @contextmanager
    def connect(self, *tables: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection with a view per existing table (all of them if none are named)."""
        con = duckdb.connect()
        try:
            for name in tables or self.tables():
                if self.exists(name):
                    con.execute(
                        f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{self.glob(name)}', union_by_name=true)"
                    )
            yield con
        finally:
            con.close()

    def count(self, name: str) -> int:
        if not self.exists(name):
            return 0
        with self.connect(name) as con:
            return int(con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])  # type: ignore[index]
