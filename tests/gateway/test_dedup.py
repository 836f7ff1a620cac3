import pytest

from gateway.dedup import Dedup

# (device, seq, ts, expected duplicate?)
CASES = [
    [("a", 1, 100, False), ("a", 1, 100, True), ("a", 2, 200, False), ("a", 1, 100, True)],
    # Same seq on another device is not a duplicate.
    [("a", 1, 100, False), ("b", 1, 100, False)],
    # A reboot that restarted seq: same number, new time -> a new reading.
    [("a", 1, 100, False), ("a", 1, 900, False), ("a", 1, 900, True)],
]


@pytest.mark.parametrize("events", CASES)
def test_dedup_table(events):
    d = Dedup()
    for device, seq, ts, dup in events:
        assert d.is_duplicate(device, seq, ts) is dup


def test_window_is_bounded_and_counts_resets():
    d = Dedup(window=3)
    for seq in range(5):
        assert not d.is_duplicate("a", seq, seq)
    assert not d.is_duplicate("a", 0, 0)  # forgotten: outside the window
    assert d.is_duplicate("a", 4, 4)
    assert not d.is_duplicate("a", 4, 44)
    assert d.seq_resets == 1
