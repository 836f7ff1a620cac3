import pytest

from gateway.sinks.spool import Spool, SpoolFull


def test_append_then_drain_oldest_first(tmp_path):
    s = Spool(tmp_path, max_bytes=10_000)
    s.append(b"a 1")
    s.append(b"b 2")
    assert len(s) == 2 and s.bytes == 6
    path, payload = s.oldest()
    assert payload == b"a 1"
    s.remove(path)
    assert s.oldest()[1] == b"b 2" and s.bytes == 3


def test_survives_restart_and_discards_partial_writes(tmp_path):
    s = Spool(tmp_path, max_bytes=10_000)
    s.append(b"one")
    (tmp_path / "0000000000000099.tmp").write_bytes(b"half")
    s2 = Spool(tmp_path, max_bytes=10_000)
    assert len(s2) == 1 and s2.bytes == 3 and not list(tmp_path.glob("*.tmp"))
    s2.append(b"two")
    assert [p for p, _ in [s2.oldest()]][0].name < sorted(tmp_path.glob("*.lp"))[-1].name


def test_full_spool_refuses_instead_of_dropping(tmp_path):
    s = Spool(tmp_path, max_bytes=5)
    s.append(b"12345")
    with pytest.raises(SpoolFull):
        s.append(b"6")
    assert len(s) == 1


def test_set_aside_leaves_the_spool(tmp_path):
    s = Spool(tmp_path, max_bytes=100)
    path = s.append(b"bad line")
    kept = s.set_aside(path)
    assert kept.read_bytes() == b"bad line" and len(s) == 0 and s.bytes == 0
