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


def test_several_oldest_batches_join_into_one_drain_payload(tmp_path):
    s = Spool(tmp_path, max_bytes=10_000)
    for text in (b"a 1", b"b 2", b"c 3"):
        s.append(text)
    paths, payload = s.oldest_run(max_bytes=8)  # room for two of them with their newline
    assert payload == b"a 1\nb 2" and len(paths) == 2
    for p in paths:
        s.remove(p)
    assert s.oldest_run(max_bytes=1) == ([s.oldest()[0]], b"c 3")  # at least one, even if larger
    assert len(s) == 1 and s.bytes == 3


def test_a_disk_error_is_handled_like_a_full_spool(tmp_path):
    # A 64 KiB tmpfs fills long before the spool's own limit (tests run as root).
    import subprocess

    from gateway.sinks.spool import SpoolError

    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        s = Spool(disk, max_bytes=10**9)
        stored = 0
        with pytest.raises(SpoolError, match="No space left on device"):
            for _ in range(100):
                s.append(b"x" * 4000)
                stored += 1
        assert len(s) == stored and s.bytes == 4000 * stored
        assert not list(disk.glob("*.tmp")) and len(list(disk.glob("*.lp"))) == stored
        s.remove(s.oldest()[0])  # room again: the next batch goes in
        s.append(b"y" * 4000)
        assert len(s) == stored
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
