"""Give back the model file's pages of the weights XNNPACK has copied into its own layout.

The interpreter memory-maps ``model.tflite``. At load, XNNPACK reads every FULLY_CONNECTED
weight tensor once and keeps a packed copy; from then on the file's copy is never read again,
but its pages stay in the process's resident set (2.5 MiB of a Gowalla int8 model's 7.3 MiB:
the item table). ``release`` tells the kernel to drop them (``madvise(MADV_DONTNEED)`` on the
interpreter's read-only file mapping): nothing is freed that anything still needs, and a page
that is read again is simply faulted back in from the file. The gathered tables (user rows,
history rows) are read by GATHER on every request and are left alone.

Best effort by design: Linux only, ``flatbuffers`` (a dependency of LiteRT) needed to find the
tensors (``_tflite_file``), and any surprise (another mapping layout, a parse error) means
nothing is released.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from pathlib import Path

from runtime.backends import _tflite_file

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


def fully_connected_weights(path: Path) -> list[tuple[int, int]]:
    """(file offset, length) of the constant weight tensor of every FULLY_CONNECTED operator."""
    return sorted({op.inputs[1].data for op in _tflite_file.operators(path)
                   if op.builtin == _tflite_file.FULLY_CONNECTED and len(op.inputs) >= 2
                   and op.inputs[1] is not None and op.inputs[1].data is not None})


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
