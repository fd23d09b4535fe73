"""Row-aligned arrays grown in place (risk/row_arrays.py): the new rows filled, the old ones kept, no copy while the
spare rows last, a copy (with spare rows again) once they run out or for an array made elsewhere."""

from __future__ import annotations

import numpy as np

from liq_pipeline.risk.row_arrays import SPARE_ROWS_SHARE, grown, grown_in_place, with_spare_rows


def test_grown_in_place_while_the_spare_rows_last():
    values = with_spare_rows(1_600, np.nan)
    values[:] = np.arange(1_600.0)
    spare = 1_600 // SPARE_ROWS_SHARE
    longer = grown(values, 1_600 + spare, np.nan)
    assert np.shares_memory(longer, values) and longer.size == 1_600 + spare
    np.testing.assert_array_equal(longer[:1_600], np.arange(1_600.0))
    assert np.isnan(longer[1_600:]).all()
    past = grown(longer, longer.size + 1, -1.0)  # no room left: a copy, with spare rows of its own
    assert not np.shares_memory(past, longer) and past.base is not None and past.base.size > past.size
    np.testing.assert_array_equal(past[:1_600], np.arange(1_600.0))
    assert past[-1] == -1.0 and grown(past, past.size + 1, 0.0).base is past.base


def test_arrays_made_elsewhere_are_copied_and_never_written_past_their_end():
    plain = np.arange(10.0)
    assert grown_in_place(plain, 12, 0.0) is None  # owns its data: no spare rows to use
    inner = np.zeros(20)[5:15]  # a view, but not the start of its buffer
    assert grown_in_place(inner, 12, 0.0) is None
    strided = np.zeros(40)[::2]
    assert grown_in_place(strided, 21, 0.0) is None
    grown_plain = grown(plain, 12, 7.0)
    np.testing.assert_array_equal(grown_plain, [*range(10), 7.0, 7.0])
    assert grown(plain, 10, 0.0) is plain and grown(plain, 4, 0.0).tolist() == [0.0, 1.0, 2.0, 3.0]
    flags = with_spare_rows(100, False, bool)
    more = grown(flags, 103, True)
    assert more.dtype == bool and more[100:].all() and not more[:100].any() and np.shares_memory(more, flags)
