"""The segment file format and sealing (run by the log in a child process; here in-process and as a script)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from events import segment
from events.log import LOG_SCHEMA


def batch(first: int, n: int) -> pa.RecordBatch:
    cols = {f.name: pa.nulls(n, f.type) for f in LOG_SCHEMA}
    cols["seq"] = pa.array(range(first, first + n), pa.int64())
    cols["event_id"] = pa.array([f"e{i}" for i in range(first, first + n)])
    return pa.RecordBatch.from_pydict(cols, schema=LOG_SCHEMA)


def write_segment(path: Path, sizes: list[int]) -> None:
    data, first = segment.segment_header(LOG_SCHEMA.serialize().to_pybytes()), 1
    for n in sizes:
        data += segment.frame(batch(first, n), first)[0]
        first += n
    path.write_bytes(data)


def read_frames(path: Path) -> list[segment.FrameIndex]:
    data = memoryview(path.read_bytes())
    head = segment.read_header(data)
    assert head is not None
    frames, pos = [], head[1]
    while (found := segment.next_frame(data, pos)) is not None:
        frames.append(found)
        pos = found[2] + found[3]
    assert pos == len(data)
    return frames


def test_seal_rewrites_many_frames_as_few_with_the_same_rows(tmp_path: Path) -> None:
    path = tmp_path / "seg.log"
    write_segment(path, [3, 1, 4, 1, 5])
    frames = segment.seal(path, rows_per_frame=6)
    assert [(f[0], f[1]) for f in frames] == [(1, 6), (7, 6), (13, 2)]
    assert read_frames(path.with_name("seg.log.tmp")) == frames  # the index it reports is the file's
    assert len(read_frames(path)) == 5  # the original is left for the log to replace


def test_seal_refuses_a_corrupt_segment_and_the_script_says_why(tmp_path: Path) -> None:
    path = tmp_path / "seg.log"
    write_segment(path, [3, 4])
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt frame"):
        segment.seal(path, 10)
    done = subprocess.run(
        [sys.executable, "-I", segment.__file__, str(path), "10"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1 and "corrupt frame" in done.stderr and not done.stdout
    write_segment(path, [3, 4])
    done = subprocess.run(
        [sys.executable, "-I", segment.__file__, str(path), "10"], capture_output=True, text=True, check=True
    )
    assert [f[:2] for f in json.loads(done.stdout)] == [[1, 7]]
