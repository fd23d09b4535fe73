"""Memory of the long-lived watcher: no page faults for per-block buffers, no collector pauses over the book.

Freed buffers: a per-block engine pass allocates arrays of 100k rows again and again.

glibc serves allocations over its mmap threshold (128 kB, raised dynamically up to 32 MB) with fresh mmaps and
returns them on free; every block then page-faults its 100k-row temporaries in again. At 100k borrowers that
made a carried block's evaluation alternate between ~5 and ~9 ms (measured). Raising the mmap and trim
thresholds keeps freed buffers for reuse. Linux/glibc only; elsewhere this does nothing.

Huge pages: numpy asks the kernel for transparent huge pages on its arrays of 4 MB and more (madvise). The
kernel's khugepaged then collapses those regions in the background, holding the process's memory map lock while
it copies; a page fault of the watcher meanwhile waits. Measured: an evaluation of 36 ms wall clock with 7 ms of
CPU and 8 voluntary context switches (a carried block, normally 5 ms), in 4 runs of 12, two seconds after the first
block's large allocations. With the advice off: no such block in the next 9 runs, a third as many collapses. The
watcher's arrays are a few MB: huge pages buy it little.

Collector pauses: the position book, its user index and the tracker hold millions of long-lived Python objects;
a full (generation 2) collection walks all of them, tens of milliseconds at a random block. Once the watcher has
processed its first block they are frozen (gc.freeze): later collections only walk what came after.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # buffers below this come from the heap and are reused after free
TRIM_THRESHOLD = 512 << 20  # free heap kept before it is returned to the system

_done = False


def keep_freed_buffers() -> bool:
    """Raise glibc's mmap and trim thresholds once per process, and stop numpy's huge page advice; True if the
    thresholds took effect."""
    global _done
    if _done:
        return True
    _no_huge_page_advice()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: the platform's allocator decides
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if not _done:
        log.debug("mallopt refused the thresholds: numpy buffers keep glibc's defaults")
    return _done


def _no_huge_page_advice() -> None:
    try:
        from numpy._core.multiarray import _set_madvise_hugepage  # NUMPY_MADVISE_HUGEPAGE=0, after import
    except ImportError:  # another numpy layout: its default stays
        return
    _set_madvise_hugepage(False)


def freeze_long_lived() -> int:
    """Move every object alive now out of the collector's reach; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
