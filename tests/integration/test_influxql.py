"""The one InfluxQL reader (gateway.influxql) and its quoting rule, against a real InfluxDB."""

from __future__ import annotations

import urllib.request

import pytest

from gateway import lineproto
from gateway.influxql import InfluxQL, InfluxQLError, quote_ident, quote_string


@pytest.mark.parametrize(
    "value,literal,ident",
    [
        ("w1", "'w1'", '"w1"'),
        ("o'brien", r"'o\'brien'", '"o\'brien"'),
        ('say "hi"', "'say \"hi\"'", r'"say \"hi\""'),
        ("back\\slash", r"'back\\slash'", r'"back\\slash"'),
    ],
)
def test_quoting(value, literal, ident):
    assert quote_string(value) == literal and quote_ident(value) == ident


def test_a_quoted_value_selects_exactly_its_own_series(stack):
    # Ward "a'b" and ward "ab" both exist: stripping the quote (the old ward-view rule) would
    # have read the other ward's reading.
    lines = [f"vitals,bed=01,device=d-1,ward={lineproto.tag(w)} hr={hr}i {t}"
             for w, hr, t in (("a'b", 61, 1_000_000_000), ("ab", 62, 2_000_000_000), ('q"d', 63, 3_000_000_000))]
    req = urllib.request.Request(f"http://127.0.0.1:{stack.influx.http_port}/write?db={stack.influx.database}",
                                 data="\n".join(lines).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204
    db = InfluxQL(f"http://127.0.0.1:{stack.influx.http_port}", stack.influx.database)
    for ward, hr in (("a'b", 61), ("ab", 62), ('q"d', 63)):
        rows = db.rows(f"SELECT {quote_ident('hr')} FROM {quote_ident('vitals')} WHERE ward = {quote_string(ward)}")
        assert [r["hr"] for r in rows] == [hr]
    assert [r["time"] for r in db.rows("SELECT hr FROM vitals WHERE ward = 'ab'")] == [2000]  # epoch ms

    with pytest.raises(InfluxQLError, match="database not found"):
        InfluxQL(db.url, "no-such-db").rows("SELECT * FROM vitals")
    stack.influx.stop()
    with pytest.raises(OSError):
        db.rows("SELECT * FROM vitals")
