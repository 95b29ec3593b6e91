"""Row blocks of embedding tables, so that no step holds a second copy of a large table.

A table may be a memory-mapped ``.npy`` file larger than RAM (:func:`edgerec.from_embeddings`).
Every step that reads a whole table (validation, pruning statistics, quantization, scoring,
saving) walks it in blocks of about :data:`BLOCK_BYTES`. Reading a mapped file brings its pages
into the process (they count in its resident set until unmapped), so after each block of a
read-only or shared mapping its pages are handed back to the kernel (``madvise``
``MADV_DONTNEED``): the data stays in the page cache and in the file, and a later read maps
it again. A table small enough for one block is processed exactly as a whole array.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import tempfile
from collections.abc import Iterator

import numpy as np

BLOCK_BYTES = 16 << 20
_MADV_DONTNEED = 4  # Linux; the call is skipped where the constant or libc is missing
_PAGE = mmap.PAGESIZE


def _libc_madvise() -> object | None:
    if not hasattr(mmap, "MADV_DONTNEED"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_madvise = _libc_madvise()


def block_rows(array: np.ndarray, nbytes: int | None = None) -> int:
    """Rows per block so that a float32 copy of a block is about ``nbytes`` (default:
    :data:`BLOCK_BYTES`)."""
    width = int(np.prod(array.shape[1:])) if array.ndim > 1 else 1
    return max(1, (nbytes or BLOCK_BYTES) // (4 * max(1, width)))


def release(view: np.ndarray) -> None:
    """Drop the pages of ``view`` from this process if it lies in a shared file mapping
    (``np.memmap`` modes ``r``/``r+``/``w+``); a private (``c``) mapping may hold changes the
    file lacks, so it is left alone."""
    if _madvise is None or not isinstance(view, np.memmap) or view.mode == "c" or view.size == 0:
        return
    start = view.ctypes.data
    lo = start - start % _PAGE
    hi = start + view.nbytes
    _madvise(lo, hi - lo, _MADV_DONTNEED)  # a failure only means the pages stay resident


def row_blocks(array: np.ndarray, rows: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(start, stop, array[start:stop])`` over ``array``'s rows, ``rows`` at a time (default:
    :func:`block_rows`); a mapped block's pages are released once the consumer moves on."""
    n = array.shape[0]
    step = rows or block_rows(array)
    for start in range(0, n, step):
        stop = min(start + step, n)
        view = array[start:stop]
        yield start, stop, view
        release(view)


def first_non_finite(array: np.ndarray) -> int | None:
    """The first row holding NaN or Inf, or :obj:`None`."""
    for start, _, block in row_blocks(array):
        bad = ~np.isfinite(block)
        if bad.any():
            return start + int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
    return None


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """``np.save`` without a second copy: a mapped array is written block by block, with the
    same header ``np.save`` writes, so the file is byte-identical."""
    if not isinstance(array, np.memmap) or not array.flags.c_contiguous:
        np.save(path, array, allow_pickle=False)
        return
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
        for _, _, block in row_blocks(array):
            f.write(np.ascontiguousarray(block).data)


def output_table(shape: tuple[int, int], dtype: type, like: np.ndarray) -> np.ndarray:
    """An uninitialised array for a step's output. When the input ``like`` is a file mapping,
    a float output as large as the input would double what is resident, so it is a mapping
    too: of an unlinked temporary file (freed with the array) that :func:`row_blocks` releases
    block by block. Otherwise a plain array."""
    if not isinstance(like, np.memmap):
        return np.empty(shape, dtype)
    fd, name = tempfile.mkstemp(prefix="edgerec-", suffix=".npy")
    os.close(fd)
    try:
        return np.lib.format.open_memmap(name, mode="w+", dtype=dtype, shape=shape)
    finally:
        os.unlink(name)  # the mapping keeps the data until the array is freed
