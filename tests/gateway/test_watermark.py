"""The end-to-end delivery watermark (gateway.watermark), from tables: time passed in."""

from __future__ import annotations

import pytest

from gateway.watermark import Watermarks


def marks(w: Watermarks, now_ms: int) -> dict[str, int]:
    return {device: mark for _, device, mark, _ in w.due(now_ms)}


@pytest.mark.parametrize(
    "events,mark",
    [
        ([(5, 5)], 5),                              # the first reading: low is where the outbox starts
        ([(5, 5), (6, 5), (7, 5)], 7),              # in order
        ([(5, 5), (7, 5)], 5),                      # a gap: 6 is not handled yet
        ([(5, 5), (7, 5), (6, 5)], 7),              # the gap filled: past 7 at once
        ([(5, 5), (7, 5), (8, 7)], 8),              # the device let 6 go (low 7): the gap is no more
        ([(9, 3)], 2),                              # holds 3..9; only 9 arrived so far
        ([(2**32 - 1, 2**32 - 1), (0, 2**32 - 1), (1, 2**32 - 1)], 1),  # seq wraps
    ],
)
def test_the_mark_covers_exactly_the_handled_run(events, mark):
    w = Watermarks(interval_ms=0)
    for seq, low in events:
        w.handled("w1", "d", seq, low)
    assert marks(w, 0) == {"d": mark}


def test_at_most_one_watermark_per_interval_and_only_when_it_moved():
    w = Watermarks(interval_ms=1000)
    w.handled("w1", "d", 1, 1)
    assert w.due(0) == [("w1", "d", 1, 1)]
    w.handled("w1", "d", 2, 1)
    assert w.due(500) == []  # too soon
    assert w.due(1000) == [("w1", "d", 2, 2)]
    assert w.due(5000) == []  # nothing new


def test_a_gap_nothing_fills_is_given_up_past_max_gap():
    w = Watermarks(interval_ms=0, max_gap=3)
    w.handled("w1", "d", 1, 1)
    for seq in (3, 4, 5, 6):  # 2 never comes, and the device never moves its low
        w.handled("w1", "d", seq, 1)
    assert marks(w, 0) == {"d": 6} and w.gaps_given_up == 1


def test_top_tells_the_device_what_is_missing():
    w = Watermarks(interval_ms=0)
    for seq in (10, 11, 14, 15):  # 12 and 13 lost on the way
        w.handled("w1", "d", seq, 10)
    assert w.due(0) == [("w1", "d", 11, 15)]
    w.handled("w1", "d", 12, 10)
    w.handled("w1", "d", 13, 10)
    assert w.due(1) == [("w1", "d", 15, 15)]
    w.handled("w1", "d", 20, 20)  # the device let go of 16..19 (low 20)
    assert w.due(2) == [("w1", "d", 20, 20)]
