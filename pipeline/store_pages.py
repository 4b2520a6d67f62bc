"""The object-store pages a Ray worker is done with, out of its resident set.

Ray's object store is a shared-memory file (plasma, in /dev/shm) that every worker maps. A page
a worker has read (a block taken zero-copy) or written (a block it put) stays in that worker's
page tables after the object is freed, and so in its RSS, although the page belongs to the
store: it is counted once, in the store's own use, and reused for later objects. Over a long
run a busy actor comes to map nearly every page the store ever held, so its RSS grows with the
store's high-water mark instead of with what it holds (bench_memory.py, 1 vs 8 inputs: the
extraction actor mapped 27 vs 113 MiB of the store, against 217 vs 235 MiB of its own).

MADV_DONTNEED on a shared file mapping drops only the page-table entries: the pages stay in the
store with their contents, and an object still held is faulted in again when next read.
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

MADV_DONTNEED = 4  # the same value on every Linux architecture Ray runs on
_PROC_MAPS = "/proc/self/maps"


def _object_store_mappings() -> list[tuple[int, int]]:
    """(start, end) of this process's shared mappings of the object store's files."""
    if not os.path.exists(_PROC_MAPS):  # not Linux: nothing to release
        return []
    ranges = []
    with open(_PROC_MAPS) as fh:
        for line in fh:
            fields = line.split(None, 5)
            # Plasma names its files plasmaXXXXXX (the main one and any fallback on disk) and
            # maps them shared; a private mapping would lose its contents to MADV_DONTNEED.
            if len(fields) == 6 and fields[1].endswith("s") and os.path.basename(fields[5]).startswith("plasma"):
                start, end = fields[0].split("-")
                ranges.append((int(start, 16), int(end, 16)))
    return ranges


def release_object_store_pages() -> None:
    """Unmap from this process's page tables every object-store page it has touched; the store
    keeps them. Call between batches: pages of the batch in hand fault back in when read."""
    ranges = _object_store_mappings()
    if not ranges:
        return
    madvise = _madvise()
    for start, end in ranges:
        # A refusal (a kernel without it for this mapping) only leaves the pages mapped.
        madvise(start, end - start, MADV_DONTNEED)


@cache
def _madvise() -> ctypes._CFuncPtr:
    """libc's madvise, loaded once per process (it is called before every batch)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return libc.madvise
