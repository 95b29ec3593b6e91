"""Give back the model file's pages of the weights XNNPACK has copied into its own layout.

The interpreter memory-maps ``model.tflite``. At load, XNNPACK reads every FULLY_CONNECTED
weight tensor once and keeps a packed copy; from then on the file's copy is never read again,
but its pages stay in the process's resident set (2.5 MiB of a Gowalla int8 model's 7.3 MiB:
the item table). ``release`` tells the kernel to drop them (``madvise(MADV_DONTNEED)`` on the
interpreter's read-only file mapping): nothing is freed that anything still needs, and a page
that is read again is simply faulted back in from the file. The gathered tables (user rows,
history rows) are read by GATHER on every request and are left alone.

Best effort by design: Linux only, ``flatbuffers`` (a dependency of LiteRT) needed to find the
tensors, and any surprise (another mapping layout, a parse error) means nothing is released.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import sys
from pathlib import Path

MADV_DONTNEED = 4
PAGE = mmap.PAGESIZE


def file_mappings(path: Path) -> set[tuple[int, int, int]]:
    """(start, end, file offset) of every mapping of ``path`` in this process (Linux)."""
    if not sys.platform.startswith("linux"):
        return set()
    try:
        st = os.stat(path)
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return set()
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    out = set()
    for line in lines:
        parts = line.split(maxsplit=5)  # address perms offset dev inode path
        if len(parts) == 6 and parts[4] == str(st.st_ino) and parts[3] == dev:
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.add((lo, hi, int(parts[2], 16)))
    return out


# vtable slots of the TFLite schema (tflite/schema/schema.fbs; flatbuffer field ids never
# change). The generated schema module would do the same walk but costs 3.9 MiB to import,
# more than this saves, so the fields are read with flatbuffers' generic table accessor.
_MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_BUFFERS = 6, 8, 12
_SUBGRAPH_TENSORS, _SUBGRAPH_OPERATORS = 4, 10
_OPERATOR_OPCODE, _OPERATOR_INPUTS = 4, 6
_OPCODE_DEPRECATED, _OPCODE_BUILTIN = 4, 10
_TENSOR_BUFFER = 8
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 4, 6, 8
FULLY_CONNECTED = 9


def fully_connected_weights(path: Path) -> list[tuple[int, int]]:
    """(file offset, length) of the constant weight tensor of every FULLY_CONNECTED operator
    (walked once per file version: every thread's interpreter asks)."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    return list(_walk(str(path), st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=16)
def _walk(path: str, _size: int, _mtime_ns: int) -> tuple[tuple[int, int], ...]:
    try:
        from flatbuffers import encode, packer
        from flatbuffers import number_types as nt
        from flatbuffers.table import Table
    except ImportError:
        return ()

    def table(t: Table, slot: int) -> Table | None:
        o = t.Offset(slot)
        return Table(t.Bytes, t.Indirect(t.Pos + o)) if o else None

    def vector(t: Table, slot: int) -> tuple[int, int]:  # (position of element 0, length)
        o = t.Offset(slot)
        return (t.Vector(o), t.VectorLen(o)) if o else (0, 0)

    def element(t: Table, slot: int, i: int) -> Table:
        start, _ = vector(t, slot)
        return Table(t.Bytes, t.Indirect(start + 4 * i))

    def scalar(t: Table, slot: int, flags: object, default: int = 0) -> int:
        o = t.Offset(slot)
        return int(t.Get(flags, t.Pos + o)) if o else default

    ranges = set()
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            model = Table(mm, encode.Get(packer.uoffset, mm, 0))
            for s in range(vector(model, _MODEL_SUBGRAPHS)[1]):
                graph = element(model, _MODEL_SUBGRAPHS, s)
                for o in range(vector(graph, _SUBGRAPH_OPERATORS)[1]):
                    op = element(graph, _SUBGRAPH_OPERATORS, o)
                    code = element(model, _MODEL_OPCODES, scalar(op, _OPERATOR_OPCODE, nt.Uint32Flags))
                    builtin = max(scalar(code, _OPCODE_DEPRECATED, nt.Int8Flags),
                                  scalar(code, _OPCODE_BUILTIN, nt.Int32Flags))
                    inputs, count = vector(op, _OPERATOR_INPUTS)
                    if builtin != FULLY_CONNECTED or count < 2:
                        continue
                    weights = int(op.Get(nt.Int32Flags, inputs + 4))  # the operator's input 1
                    tensor = element(graph, _SUBGRAPH_TENSORS, weights)
                    buf = element(model, _MODEL_BUFFERS, scalar(tensor, _TENSOR_BUFFER, nt.Uint32Flags))
                    data, length = vector(buf, _BUFFER_DATA)
                    if length:
                        ranges.add((data, length))
                    elif scalar(buf, _BUFFER_OFFSET, nt.Uint64Flags) > 1:  # stored after the flatbuffer
                        ranges.add((scalar(buf, _BUFFER_OFFSET, nt.Uint64Flags),
                                    scalar(buf, _BUFFER_SIZE, nt.Uint64Flags)))
    except Exception:  # not a model this walk understands (or not a file we can map): nothing
        return ()
    return tuple(sorted(ranges))


def release(path: Path, mappings: set[tuple[int, int, int]]) -> int:
    """Drop the pages of ``path``'s FULLY_CONNECTED weights from ``mappings``; bytes released."""
    if not mappings:
        return 0
    ranges = fully_connected_weights(path)
    if not ranges:
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for lo, hi, offset in mappings:
        for start, length in ranges:
            a = lo + start - offset
            first, last = -(-a // PAGE) * PAGE, (a + length) // PAGE * PAGE  # whole pages only
            first, last = max(first, lo), min(last, hi)
            if last > first and madvise(first, last - first, MADV_DONTNEED) == 0:
                released += last - first
    return released
