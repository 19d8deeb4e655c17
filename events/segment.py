"""The event log's segment file format, and sealing: a closed segment's commit frames rewritten as few.

A segment is a header (magic + the Arrow schema message) followed by frames::

    b"CXFR" | payload length u32 | first seq u64 | rows u32 | crc32 u32 | payload (one Arrow IPC record batch)

The CRC covers the length, seq, rows and payload. ``python events/segment.py SEGMENT ROWS`` seals one closed
segment into ``SEGMENT.tmp`` (same rows, same seqs, frames of up to ROWS rows; fsynced, not renamed: the log
renames it and swaps its index) and prints the new frames as JSON. `events.log` runs it as a child process at
a lower CPU priority: sealing a 16 MiB segment is ~0.2 s of CPU, which, as a thread of the serving process,
stalled the acknowledgements of every request for as long. It runs as a script, not ``-m``, so that the child
imports pyarrow only, not the events package.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from pathlib import Path

import pyarrow as pa

MAGIC = b"CXIEVLOG"
HEADER = struct.Struct("<8sII")  # magic, schema length, crc32(schema)
FRAME = struct.Struct("<4sIQII")  # magic, payload length, first seq, rows, crc32
FRAME_MAGIC = b"CXFR"
EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
#: CPU priority increment of the sealing child: derived work yields to serving.
NICENESS = 10

#: A frame's place in its segment: (first seq, rows, payload offset, payload length).
FrameIndex = tuple[int, int, int, int]


def frame(batch: pa.RecordBatch, first: int) -> tuple[bytes, int]:
    """A framed record (header + payload) and its payload length."""
    payload = batch.serialize().to_pybytes()
    head = struct.pack("<IQI", len(payload), first, batch.num_rows)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return FRAME_MAGIC + head + struct.pack("<I", crc) + payload, len(payload)


def segment_header(schema_bytes: bytes) -> bytes:
    return HEADER.pack(MAGIC, len(schema_bytes), zlib.crc32(schema_bytes)) + schema_bytes


def read_header(data: memoryview) -> tuple[bytes, int] | None:
    """(schema message, offset of the first frame), or None when the header is torn or not ours."""
    if len(data) < HEADER.size:
        return None
    magic, n, crc = HEADER.unpack_from(data)
    schema = bytes(data[HEADER.size : HEADER.size + n])
    if magic != MAGIC or len(schema) != n or zlib.crc32(schema) != crc:
        return None
    return schema, HEADER.size + n


def next_frame(data: memoryview, pos: int) -> FrameIndex | None:
    """The valid frame at ``pos``, or None (torn or corrupt)."""
    if len(data) - pos < FRAME.size:
        return None
    magic, length, first, rows, crc = FRAME.unpack_from(data, pos)
    start, end = pos + FRAME.size, pos + FRAME.size + length
    head = data[pos + 4 : pos + FRAME.size - 4]
    if magic != FRAME_MAGIC or end > len(data) or zlib.crc32(data[start:end], zlib.crc32(head)) != crc:
        return None
    return first, rows, start, length


def ipc_stream(schema: bytes, payloads: list[memoryview]) -> bytes:
    """One Arrow IPC stream of the schema message and frame payloads (batch messages), ready to decode."""
    return b"".join([schema, *payloads, EOS])


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def seal(path: Path, rows_per_frame: int) -> list[FrameIndex]:
    """Write ``path``'s rows as frames of up to ``rows_per_frame`` rows to ``path.tmp`` (fsynced); return
    its frames. Raises ValueError when any frame of the closed segment is not valid."""
    data = memoryview(path.read_bytes())
    head = read_header(data)
    if head is None:
        raise ValueError(f"{path}: bad segment header")
    schema, pos = head
    parts = []
    while pos < len(data):
        found = next_frame(data, pos)
        if found is None:
            raise ValueError(f"{path}: corrupt frame at byte {pos}")
        _, _, start, length = found
        parts.append(data[start : start + length])
        pos = start + length
    table = pa.ipc.open_stream(ipc_stream(schema, parts)).read_all()
    out = os.open(path.with_name(path.name + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    frames: list[FrameIndex] = []
    try:
        header = segment_header(schema)
        write_all(out, header)
        size = len(header)
        for batch in table.combine_chunks().to_batches(max_chunksize=rows_per_frame):
            first = batch.column(0)[0].as_py()
            framed, length = frame(batch, first)
            write_all(out, framed)
            frames.append((first, batch.num_rows, size + FRAME.size, length))
            size += len(framed)
        os.fsync(out)
    finally:
        os.close(out)
    return frames


def main(argv: list[str]) -> int:
    os.nice(NICENESS)
    try:
        frames = seal(Path(argv[0]), int(argv[1]))
    except (OSError, ValueError, pa.ArrowException) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(frames))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
