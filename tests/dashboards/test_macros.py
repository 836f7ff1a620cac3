"""dashboards.influxql_macros: Grafana's InfluxQL macro and template-variable expansion, from tables."""

from __future__ import annotations

import pytest

from dashboards.influxql_macros import (
    Var, auto_interval_ms, escape_regex, expand, format_interval, format_value, influx_time, round_interval,
    time_filter, variables_used,
)

W1 = Var.single("w1")
MULTI = Var.many("w1", "w2")


@pytest.mark.parametrize("query, variables, expected", [
    # the three syntaxes, single-valued: inserted as is
    ('"ward" = \'$ward\'', {"ward": W1}, '"ward" = \'w1\''),
    ('"ward" = \'${ward}\'', {"ward": W1}, '"ward" = \'w1\''),
    ('"ward" = \'[[ward]]\'', {"ward": W1}, '"ward" = \'w1\''),
    # regex form, single value of a multi variable: escaped, no group
    ('"ward" =~ /^$ward$/', {"ward": Var.many("w1")}, '"ward" =~ /^w1$/'),
    # regex form, several values: escaped and grouped
    ('"ward" =~ /^$ward$/', {"ward": MULTI}, '"ward" =~ /^(w1|w2)$/'),
    ('"bed" =~ /^${bed}$/', {"bed": Var.many("3.1", "a/b", "x|y")}, r'"bed" =~ /^(3\.1|a\/b|x\|y)$/'),
    # a plain single-valued variable is not escaped (Grafana leaves it to the query author)
    ('"bed" =~ /^$bed$/', {"bed": Var.single("3.1")}, '"bed" =~ /^3.1$/'),
    # explicit formats
    ("${ward:raw}", {"ward": MULTI}, "w1,w2"),
    ("${ward:regex}", {"ward": Var.single("a.b")}, r"a\.b"),
    # the longest name wins: $ward is not $w + "ard"
    ("$ward $w", {"ward": W1, "w": Var.single("x")}, "w1 x"),
    # two variables in one query
    ('"ward" =~ /^$ward$/ AND "bed" =~ /^$bed$/', {"ward": MULTI, "bed": Var.many("01", "02")},
     '"ward" =~ /^(w1|w2)$/ AND "bed" =~ /^(01|02)$/'),
])
def test_variables(query, variables, expected):
    assert expand(query, variables, interval_ms=1000) == expected


@pytest.mark.parametrize("start, end, expected", [
    ("now-1h", "now", "time >= now() - 1h and time <= now()"),
    ("now-7d", "now", "time >= now() - 7d and time <= now()"),
    ("now-30m", "now-5m", "time >= now() - 30m and time <= now() - 5m"),
    (1700000000000, 1700003600000, "time >= 1700000000000ms and time <= 1700003600000ms"),
    ("1700000000000", "now", "time >= 1700000000000ms and time <= now()"),
])
def test_time_filter(start, end, expected):
    assert time_filter(start, end) == expected
    assert expand("WHERE $timeFilter", start=start, end=end, interval_ms=1000) == f"WHERE {expected}"


def test_unsupported_time_is_refused():
    with pytest.raises(ValueError):
        influx_time("now/d")


@pytest.mark.parametrize("raw, nice", [
    (1, 10), (3_600, 5_000), (43_200, 30_000), (86_400, 60_000), (604_800, 600_000),
    (2_592_000, 1_800_000), (3_000_000, 3_600_000), (10**12, 31_536_000_000),
])
def test_round_interval(raw, nice):
    assert round_interval(raw) == nice


@pytest.mark.parametrize("range_ms, interval", [
    # the bed-detail presets at 1000 points: 1 h, 12 h stay raw (< 1 min), 24 h and 7 d read the trend
    (3_600_000, "5s"), (43_200_000, "30s"), (86_400_000, "1m"), (604_800_000, "10m"),
])
def test_auto_interval_of_the_presets(range_ms, interval):
    assert format_interval(auto_interval_ms(range_ms)) == interval


def test_min_interval_is_a_floor():
    assert auto_interval_ms(60_000, min_interval_ms=10_000) == 10_000


@pytest.mark.parametrize("ms, text", [(500, "500ms"), (1000, "1s"), (90_000, "90s"), (600_000, "10m"),
                                      (3_600_000, "1h"), (86_400_000, "1d"), (31_536_000_000, "1y")])
def test_format_interval(ms, text):
    assert format_interval(ms) == text


def test_interval_macros():
    q = "GROUP BY time($__interval), time($interval) -- $__interval_ms"
    assert expand(q, interval_ms=30_000) == "GROUP BY time(30s), time(30s) -- 30000"
    # computed from the range when not given
    assert expand("$__interval_ms", start="now-7d") == "600000"


def test_a_missing_variable_is_an_error_not_a_half_expanded_query():
    with pytest.raises(KeyError, match="bed"):
        expand('"bed" =~ /^$bed$/', {"ward": W1})


def test_escape_regex_covers_grafanas_set():
    assert escape_regex(r"\^$*+?.()|[]{}/a") == r"\\\^\$\*\+\?\.\(\)\|\[\]\{\}\/a"


def test_format_value_defaults():
    assert format_value(Var.single("a.b")) == "a.b"
    assert format_value(Var(("a.b",), include_all=True)) == r"a\.b"


def test_variables_used():
    assert variables_used('"ward" =~ /^$ward$/ AND $timeFilter AND [[bed]] ${x:raw}') == {"ward", "timeFilter", "bed", "x"}
