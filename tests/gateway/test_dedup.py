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


def test_a_long_stream_keeps_the_newest_window_and_catches_every_replay_inside_it():
    d = Dedup(window=1024)
    for seq in range(5000):
        assert not d.is_duplicate("a", seq, 10 * seq)
    # Every replay within the newest 1,024 is caught; older ones are let through, counted.
    assert all(d.is_duplicate("a", seq, 10 * seq) for seq in range(5000 - 1024, 5000))
    assert not d.is_duplicate("a", 5000 - 1025, 10 * (5000 - 1025)) and d.late == 1
    assert d.seq_resets == 0


def test_seq_wraps_at_2_to_the_32():
    d = Dedup(window=64)
    top = 2**32 - 10
    for k in range(40):
        seq = (top + k) % 2**32
        assert not d.is_duplicate("a", seq, k)
    assert d.is_duplicate("a", 2**32 - 1, 9) and d.is_duplicate("a", 5, 15) and d.late == 0


def test_a_reboot_that_restarts_seq_is_remembered_as_new_readings():
    d = Dedup(window=16)
    for seq in range(100):
        d.is_duplicate("a", seq, 1000 + seq)
    # The device rebooted without keeping seq: low numbers again, later times.
    for seq in range(10):
        assert not d.is_duplicate("a", seq, 5000 + seq)
    assert all(d.is_duplicate("a", seq, 5000 + seq) for seq in range(10))  # their replays are caught
    assert d.late == 0


@pytest.mark.parametrize("max_devices", [1, 100])
def test_devices_are_bounded_and_the_least_recent_is_forgotten(max_devices):
    d = Dedup(max_devices=max_devices)
    for n in range(max_devices + 5):
        d.is_duplicate(f"dev-{n}", 1, 1)
    assert len(d) == max_devices and d.forgotten_devices == 5
    assert d.is_duplicate(f"dev-{max_devices + 4}", 1, 1)
    assert not d.is_duplicate("dev-0", 1, 1)  # forgotten: a late replay is let through


def test_memory_stays_bounded_under_20000_distinct_ids():
    import tracemalloc

    d = Dedup()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for n in range(20_000):
        d.is_duplicate(f"unregistered-{n:05d}", 0, n)
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(d) == 4096 and d.forgotten_devices == 20_000 - 4096
    assert grown < 4 * 2**20, f"{grown / 2**20:.1f} MiB for 4,096 remembered devices"
