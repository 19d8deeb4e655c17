"""Feast online writes in a child process, so they never hold the serving process's interpreter.

Feast's `write_to_online_store` converts every value to a protobuf in Python (~0.5 ms a row per view) and
holds the interpreter while it does. In the serving process that time is taken from ingestion and scoring:
at 1,000 events/s, turning the write-behind off lowered p99 event -> visible score from 67-79 ms to 42-46 ms
(two interleaved pairs; the diagnostic behind this module). `WriterProcess` runs the same
`FeatureRepo.write_views` in a child (``python -m features.write_process``), at a lower CPU priority; the
parent's writer thread only hands it Arrow batches and waits for each acknowledgement with the interpreter
released.

Protocol, over the child's stdin/stdout: the first stdin line is the Settings as JSON; then each request is an
8-byte little-endian length and one Arrow IPC stream (the rows, one `_at` column with each row's instant).
The child answers one line per request: ``ok`` once every view is written and committed, or ``error <text>``.
It says ``ready`` once Feast is imported and the store opened, and exits at end of input only (so it exits
when the parent dies, even by kill -9, and not before the parent's last flush on a Ctrl-C or SIGTERM: it runs
in a session of its own and ignores SIGINT and SIGTERM, which BentoML's supervisor also sends to the children
of the workers it stops). The online store is switched to SQLite's WAL journal, so the parent's
reads never wait for the child's write transactions.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
from typing import IO, TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from contract.errors import WorkspaceError
from contract.settings import REPO_ROOT, Settings

if TYPE_CHECKING:
    from features.store import FeatureRepo

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("<Q")
_AT = "_at"
#: The child's CPU priority relative to the parent (os.nice increment): behind writes yield to serving.
NICENESS = 10


class WriterProcessError(WorkspaceError):
    """The writer child failed or is gone; the rows it was given are not known to be written."""


class WriterProcess:
    """A child process that writes feature rows (every view's columns) to the Feast online store."""

    def __init__(
        self, settings: Settings, answer_timeout_s: float = 60.0, ready_timeout_s: float = 300.0
    ) -> None:
        self.answer_timeout_s = answer_timeout_s  # a write answered later than this: the child is killed
        self.ready_timeout_s = ready_timeout_s  # Feast's import and the store's opening, on a busy machine
        paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}  # an empty entry would add the cwd
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "features.write_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C or SIGTERM to the service's group must not end it mid-write
            cwd=os.getcwd(),
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._stdout: IO[bytes] = self._proc.stdout
        self._lock = threading.Lock()  # one request at a time
        self._ready = False
        self._send(settings.model_dump_json().encode() + b"\n")

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def _send(self, data: bytes) -> None:
        try:
            self._stdin.write(data)
            self._stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise WriterProcessError(f"online writer process {self.pid} is gone: {exc}") from exc

    def _answer(self, timeout_s: float) -> str:
        """The child's next line; a child silent for `timeout_s` is killed (the caller then writes in-process:
        a hung child must not hang the writer thread, nor the service's shutdown behind it)."""
        if not select.select([self._stdout], [], [], timeout_s)[0]:
            self._proc.kill()
            self._proc.wait()
            raise WriterProcessError(
                f"online writer process {self.pid} did not answer in {timeout_s:g} s: killed"
            )
        line = self._stdout.readline()
        if not line:
            raise WriterProcessError(f"online writer process {self.pid} exited (code {self._proc.poll()})")
        return line.decode().strip()

    def _wait_ready(self) -> None:
        if not self._ready:
            answer = self._answer(self.ready_timeout_s)
            if answer != "ready":
                raise WriterProcessError(f"online writer process {self.pid} did not start: {answer}")
            self._ready = True

    def write(self, rows: pd.DataFrame, stamps: pd.Series) -> None:
        """Write `rows` (one per customer, every view's columns) with each row's instant `stamps`; returns once
        the child has committed them. Raises `WriterProcessError` when it could not."""
        table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
        table = table.append_column(_AT, pa.array(stamps.dt.tz_convert("UTC"), pa.timestamp("us", tz="UTC")))
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
        payload = sink.getvalue()
        with self._lock:
            self._wait_ready()
            self._send(_LENGTH.pack(payload.size) + payload.to_pybytes())
            answer = self._answer(self.answer_timeout_s)
        if answer != "ok":
            raise WriterProcessError(f"online writer process {self.pid}: {answer}")

    def close(self, timeout: float = 10.0) -> None:
        """End the child's input and wait for it to exit (killed after `timeout` seconds)."""
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stdout.close()


def use_wal(repo: FeatureRepo) -> None:
    """Switch the online store's SQLite file to the WAL journal (persistent in the file): readers in another
    process then read the last commit instead of waiting for a write transaction to end."""
    import sqlite3

    path = repo.settings.feast_dir / "online.db"
    with contextlib.closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA journal_mode=WAL")


def _serve(stdin: IO[bytes], answers: IO[bytes]) -> int:
    from features.store import FeatureRepo

    def answer(text: str) -> None:
        answers.write(text.encode() + b"\n")
        answers.flush()

    try:
        repo = FeatureRepo(Settings.model_validate_json(stdin.readline()))
        repo.settings.feast_dir.mkdir(parents=True, exist_ok=True)
        use_wal(repo)
        _ = repo.store  # imports Feast and loads the registry before the first request
        gc.freeze()  # Feast's import-time objects: full collections walked them for ~115 ms every few seconds
    except Exception as exc:
        answer(f"error {type(exc).__name__}: {exc}".replace("\n", " "))
        return 1
    answer("ready")
    while header := stdin.read(_LENGTH.size):
        if len(header) < _LENGTH.size:
            break
        (size,) = _LENGTH.unpack(header)
        body = stdin.read(size)
        if len(body) < size:
            break
        try:
            table = pa.ipc.open_stream(body).read_all()
            repo.write_views(table.drop_columns([_AT]).to_pandas(), table.column(_AT).to_pandas())
        except Exception as exc:  # the parent keeps the rows and retries; say why
            answer(f"error {type(exc).__name__}: {exc}".replace("\n", " "))
            continue
        answer("ok")
    return 0


def main() -> int:
    """The child's entry point: answers go to the real stdout; anything else printed goes to stderr."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # BentoML's supervisor signals its workers' children too
        signal.signal(sig, signal.SIG_IGN)
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    logging.basicConfig(level=logging.WARNING, format="cxi-online-writer %(levelname)s %(name)s: %(message)s")
    return _serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    sys.exit(main())
