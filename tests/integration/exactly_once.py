"""Exactly-once check for simulated wards sharing one InfluxDB (scale-out, bridge, metrics)."""

from __future__ import annotations

from collections import Counter

from provisioning.stack.services import InfluxDB, wait_until


def stored(influx: InfluxDB, ward: str) -> int:
    rows = influx.rows(f"SELECT count(seq) FROM vitals WHERE ward='{ward}'")
    return rows[0]["count"] if rows else 0


def check_exactly_once(influx: InfluxDB, ward: str, summary: dict, timeout: float = 60) -> int:
    """Every reading each device of ``ward`` made (the simulator's summary: ``seq_next``) is
    in InfluxDB exactly once; returns the total."""
    made = {dev: s["seq_next"] for dev, s in summary.items()}
    total = sum(made.values())
    wait_until(lambda: stored(influx, ward) >= total, timeout, f"{total} readings of {ward} in InfluxDB")
    for dev, n in made.items():
        counts = Counter(r["seq"] for r in influx.rows(f"SELECT seq FROM vitals WHERE device='{dev}'"))
        assert sorted(counts) == list(range(n)), f"{dev}: missing or extra seqs"
        assert max(counts.values()) == 1, f"{dev}: duplicates"
    assert stored(influx, ward) == total
    return total
