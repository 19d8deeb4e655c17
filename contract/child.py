"""A helper child process that works off the serving process's interpreter: requests in, one answer line each.

Two kinds of derived work hold the interpreter for long stretches of pure Python: Feast's online writes
(`features.write_process`) and live segment evaluation with webhook queuing (`serving.segments_process`). In
the serving process that time is taken from ingestion and scoring; in a child it runs on the other core, at a
lower CPU priority, while the parent waits for each answer with the interpreter released.

Protocol, over the child's stdin/stdout: the first stdin line is the Settings as JSON; then each request is an
8-byte little-endian length and its payload. The child answers ``ready`` once started, then one line per
request: ``ok`` when done, or ``error <text>``. It exits at end of input only, so it exits when the parent dies
(even by kill -9), and not before the parent's last request on a Ctrl-C or SIGTERM: it runs in a session of its
own and ignores SIGINT and SIGTERM, which BentoML's supervisor also sends to the children of the workers it
stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, NoReturn

from contract.errors import WorkspaceError
from contract.settings import REPO_ROOT, Settings

_LENGTH = struct.Struct("<Q")
#: A child's CPU priority relative to the parent (os.nice increment): derived work yields to serving.
NICENESS = 10

#: What a child does with one request's payload; raising answers ``error``.
Handler = Callable[[bytes], None]


class ChildError(WorkspaceError):
    """A helper child failed or is gone; the request it was given is not known to be done."""


class Child:
    """The parent's handle on a helper child running ``python -m <module>`` (whose main calls `serve`)."""

    def __init__(
        self,
        module: str,
        settings: Settings,
        *,
        what: str,
        answer_timeout_s: float = 60.0,
        ready_timeout_s: float = 300.0,
    ) -> None:
        self.what = what  # for messages: "online writer process", ...
        self.answer_timeout_s = answer_timeout_s  # a request answered later than this: the child is killed
        self.ready_timeout_s = ready_timeout_s  # its imports and set-up, on a busy machine
        paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}  # an empty entry would add the cwd
        self._proc = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl-C or SIGTERM to the service's group must not end it mid-request
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

    @property
    def started(self) -> bool:
        """Whether the child has said ``ready`` (its set-up succeeded)."""
        return self._ready

    def _send(self, data: bytes) -> None:
        try:
            self._stdin.write(data)
            self._stdin.flush()
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise ChildError(f"{self.what} {self.pid} is gone: {exc}") from exc

    def _answer(self, timeout_s: float) -> str:
        """The child's next line; a child silent for `timeout_s` is killed (the caller then does the work
        in-process: a hung child must not hang the caller's thread, nor the service's shutdown behind it)."""
        if not select.select([self._stdout], [], [], timeout_s)[0]:
            self._proc.kill()
            self._proc.wait()
            raise ChildError(f"{self.what} {self.pid} did not answer in {timeout_s:g} s: killed")
        line = self._stdout.readline()
        if not line:
            raise ChildError(f"{self.what} {self.pid} exited (code {self._proc.poll()})")
        return line.decode().strip()

    def wait_ready(self) -> None:
        """Return once the child has said ``ready``; raises `ChildError` when its set-up failed."""
        with self._lock:
            self._wait_ready()

    def _wait_ready(self) -> None:
        if not self._ready:
            answer = self._answer(self.ready_timeout_s)
            if answer != "ready":
                raise ChildError(f"{self.what} {self.pid} did not start: {answer}")
            self._ready = True

    def request(self, payload: bytes) -> None:
        """Hand `payload` over and return once the child answered ``ok``; raises `ChildError` otherwise."""
        with self._lock:
            self._wait_ready()
            self._send(_LENGTH.pack(len(payload)) + payload)
            answer = self._answer(self.answer_timeout_s)
        if answer != "ok":
            raise ChildError(f"{self.what} {self.pid}: {answer}")

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


def _loop(start: Callable[[Settings], Handler], stdin: IO[bytes], answers: IO[bytes]) -> int:
    def answer(text: str) -> None:
        answers.write(text.encode() + b"\n")
        answers.flush()

    try:
        handle = start(Settings.model_validate_json(stdin.readline()))
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
            handle(body)
        except Exception as exc:  # the parent decides what to do with the request; say why
            logging.getLogger(__name__).exception("request failed")
            answer(f"error {type(exc).__name__}: {exc}".replace("\n", " "))
            continue
        answer("ok")
    return 0


def serve(start: Callable[[Settings], Handler], *, name: str) -> int:
    """A child's main: `start` sets up from the Settings and returns the request handler. Answers go to the
    real stdout; anything else printed goes to stderr."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # BentoML's supervisor signals its workers' children too
        signal.signal(sig, signal.SIG_IGN)
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    logging.basicConfig(level=logging.WARNING, format=f"{name} %(levelname)s %(name)s: %(message)s")
    return _loop(start, sys.stdin.buffer, answers)


def exit_now(code: int) -> NoReturn:
    """End a child without the interpreter's teardown (nothing is left to flush but stderr): with its imports
    frozen (`gc.freeze`), nanobind (DuckDB's bindings) reports them as leaks at exit, into the service log."""
    sys.stderr.flush()
    os._exit(code)
