"""Seq persistence without flash wear, and the watchdog's health rule (pure, from tables)."""

import pytest

from bedside.heartbeat import Heartbeats
from bedside.seqstore import SeqStore


def test_fresh_board_starts_at_zero_and_reserves_a_block(tmp_path):
    s = SeqStore(str(tmp_path / "seq"), block=100)
    assert s.start() == 0 and s.writes == 1


def test_seq_never_repeats_across_reboots_and_writes_are_rare(tmp_path):
    path = str(tmp_path / "seq")
    used = []
    writes = 0
    for boot in range(5):
        s = SeqStore(path, block=100)
        seq = s.start()
        for _ in range(250 if boot % 2 else 30):  # reboot at arbitrary points
            used.append(seq)
            s.note(seq)
            seq += 1
        writes += s.writes
    assert used == sorted(used) and len(set(used)) == len(used)
    assert writes <= len(used) // 100 + 2 * 5  # one write per block, plus one per boot


def test_a_torn_write_falls_back_to_the_other_file(tmp_path):
    path = str(tmp_path / "seq")
    s = SeqStore(path, block=10)
    s.start()
    for seq in range(25):
        s.note(seq)
    last_good = max(int((tmp_path / f"seq.{x}").read_text().split()[0]) for x in "ab")
    newest = max("ab", key=lambda x: int((tmp_path / f"seq.{x}").read_text().split()[0]))
    (tmp_path / f"seq.{newest}").write_text("12")  # power cut mid-write: garbage
    first = SeqStore(path, block=10).start()
    assert first >= 25 - 10 and first < last_good  # the older reservation, still unused


def test_seq_wraps_at_2_to_the_32(tmp_path):
    path = str(tmp_path / "seq")
    (tmp_path / "seq.a").write_text("")  # unreadable: ignored
    s = SeqStore(path, block=4)
    s._write(2**32 - 3)
    first = SeqStore(path, block=4).start()
    assert first == 2**32 - 3


@pytest.mark.parametrize(
    "beats,now,stale",
    [
        ({}, 0, ["sampler", "network"]),
        ({"sampler": 0, "network": 0}, 1000, []),
        ({"sampler": 0, "network": 0}, 5001, ["sampler"]),
        ({"sampler": 9000, "network": 0}, 10000, []),
        ({"sampler": 9000, "network": 0}, 60001, ["sampler", "network"]),
    ],
)
def test_heartbeats_table(beats, now, stale):
    h = Heartbeats({"sampler": 5000, "network": 60000})
    for name, t in beats.items():
        h.beat(name, t)
    assert h.stale(now) == stale and h.healthy(now) == (not stale)


def test_unknown_heartbeat_is_an_error():
    with pytest.raises(KeyError):
        Heartbeats({"sampler": 1}).beat("typo", 0)
