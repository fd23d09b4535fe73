"""The watcher's process memory policy: numpy's huge page advice off (khugepaged stalls), freed buffers kept."""

from __future__ import annotations

import sys

import pytest
from numpy._core.multiarray import _set_madvise_hugepage

from liq_pipeline.watch import process_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and transparent huge pages: Linux")
def test_keep_freed_buffers_turns_numpys_huge_page_advice_off(monkeypatch):
    monkeypatch.setattr(process_memory, "_done", False)
    before = _set_madvise_hugepage(True)
    try:
        assert process_memory.keep_freed_buffers()
        assert _set_madvise_hugepage(True) is False  # the advice was off
    finally:
        _set_madvise_hugepage(before)
