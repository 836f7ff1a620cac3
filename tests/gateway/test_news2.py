"""NEWS2 scoring (gateway.clinical.news2) and its calculator command, against docs/clinical.md "NEWS2".

The reference tables in this file are typed in again from docs/clinical.md (integer rows, as
printed by the RCP), not imported from the module, so a slip in the module's tables shows.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cli import news2calc
from gateway.clinical import news2
from gateway.clinical.news2 import Observations, score

REPO = Path(__file__).resolve().parents[2]
ALL7 = ["rr", "spo2", "o2", "sbp", "pulse", "acvpu", "temp"]
NORMAL = dict(rr=16, spo2=97, o2=False, sbp=120, pulse=70, acvpu="A", temp=37.0)


def sub(param: str, value, **extra) -> int:
    return score(Observations(**{param: value}, **extra)).subscores[param]


# --- every band edge, both sides, and values between the integer rows -------------------------

RR_CASES = [
    (0, 3), (7.9, 3), (8, 3), (8.01, 1), (8.5, 1), (9, 1), (11, 1), (11.01, 0), (11.5, 0),
    (12, 0), (20, 0), (20.01, 2), (20.5, 2), (21, 2), (24, 2), (24.01, 3), (24.5, 3), (25, 3),
    (60, 3),
]
SPO2_SCALE1_CASES = [
    (0, 3), (91, 3), (91.01, 2), (91.5, 2), (92, 2), (93, 2), (93.5, 1), (94, 1), (95, 1),
    (95.01, 0), (95.5, 0), (96, 0), (100, 0),
]
SBP_CASES = [
    (0, 3), (90, 3), (90.01, 2), (90.5, 2), (91, 2), (100, 2), (100.5, 1), (101, 1), (110, 1),
    (110.5, 0), (111, 0), (219, 0), (219.01, 3), (219.5, 3), (220, 3), (300, 3),
]
PULSE_CASES = [
    (0, 3), (40, 3), (40.01, 1), (40.5, 1), (41, 1), (50, 1), (50.5, 0), (51, 0), (90, 0),
    (90.5, 1), (91, 1), (110, 1), (110.5, 2), (111, 2), (130, 2), (130.5, 3), (131, 3), (250, 3),
]
TEMP_CASES = [
    (30.0, 3), (35.0, 3), (35.01, 1), (35.05, 1), (35.1, 1), (36.0, 1), (36.05, 0), (36.1, 0),
    (38.0, 0), (38.05, 1), (38.1, 1), (39.0, 1), (39.05, 2), (39.1, 2), (42.0, 2),
]


@pytest.mark.parametrize("value, points", RR_CASES)
def test_rr(value, points):
    assert sub("rr", value) == points


@pytest.mark.parametrize("o2", [None, False, True])
@pytest.mark.parametrize("value, points", SPO2_SCALE1_CASES)
def test_spo2_scale1_ignores_oxygen(value, points, o2):
    # On scale 1 oxygen scores only in its own row, never in the SpO2 row.
    assert sub("spo2", value, o2=o2) == points


@pytest.mark.parametrize("value, points", SBP_CASES)
def test_sbp(value, points):
    assert sub("sbp", value) == points


@pytest.mark.parametrize("value, points", PULSE_CASES)
def test_pulse(value, points):
    assert sub("pulse", value) == points


@pytest.mark.parametrize("value, points", TEMP_CASES)
def test_temp(value, points):
    assert sub("temp", value) == points


# Scale 2: (spo2, points on air, points on oxygen). Up to 92 % oxygen makes no difference.
SCALE2_CASES = [
    (0, 3, 3), (80, 3, 3), (83, 3, 3), (83.01, 2, 2), (83.5, 2, 2), (84, 2, 2), (85, 2, 2),
    (85.5, 1, 1), (86, 1, 1), (87, 1, 1), (87.5, 0, 0), (88, 0, 0), (90, 0, 0), (92, 0, 0),
    (92.01, 0, 1), (92.5, 0, 1), (93, 0, 1), (94, 0, 1), (94.5, 0, 2), (95, 0, 2), (96, 0, 2),
    (96.5, 0, 3), (97, 0, 3), (100, 0, 3),
]


@pytest.mark.parametrize("value, on_air, on_o2", SCALE2_CASES)
def test_spo2_scale2(value, on_air, on_o2):
    assert sub("spo2", value, scale=2, o2=False) == on_air
    assert sub("spo2", value, scale=2, o2=True) == on_o2


@pytest.mark.parametrize("value, on_air, _on_o2", SCALE2_CASES)
def test_spo2_scale2_oxygen_unknown_scores_as_air_and_is_partial(value, on_air, _on_o2):
    r = score(Observations(spo2=value, scale=2))
    assert r.subscores["spo2"] == on_air
    assert r.partial and "o2" in r.missing and "o2" not in r.subscores


def test_scale2_on_oxygen_scores_both_rows():
    r = score(Observations(spo2=95, scale=2, o2=True))
    assert r.subscores == {"spo2": 2, "o2": 2}
    assert r.score == 4 and r.scale == 2


@pytest.mark.parametrize("o2, points", [(True, 2), (False, 0)])
def test_air_or_oxygen(o2, points):
    assert sub("o2", o2) == points


@pytest.mark.parametrize("acvpu, points", [("A", 0), ("C", 3), ("V", 3), ("P", 3), ("U", 3)])
def test_acvpu(acvpu, points):
    assert sub("acvpu", acvpu) == points


# (parameter, edge, points at the edge, points at the next float above it): nothing falls
# between rows, however close to the edge.
EDGES = [
    ("rr", 8, 3, 1), ("rr", 11, 1, 0), ("rr", 20, 0, 2), ("rr", 24, 2, 3),
    ("spo2", 91, 3, 2), ("spo2", 93, 2, 1), ("spo2", 95, 1, 0),
    ("sbp", 90, 3, 2), ("sbp", 100, 2, 1), ("sbp", 110, 1, 0), ("sbp", 219, 0, 3),
    ("pulse", 40, 3, 1), ("pulse", 50, 1, 0), ("pulse", 90, 0, 1), ("pulse", 110, 1, 2),
    ("pulse", 130, 2, 3),
    ("temp", 35.0, 3, 1), ("temp", 36.0, 1, 0), ("temp", 38.0, 0, 1), ("temp", 39.0, 1, 2),
]


@pytest.mark.parametrize("param, edge, at, above", EDGES)
def test_edges_are_closed_above_and_leave_no_gap(param, edge, at, above):
    assert sub(param, float(edge)) == at
    assert sub(param, math.nextafter(float(edge), math.inf)) == above


@pytest.mark.parametrize(
    "edge, at, above, o2",
    [(83, 3, 2, True), (85, 2, 1, True), (87, 1, 0, True), (92, 0, 1, True), (94, 1, 2, True),
     (96, 2, 3, True), (92, 0, 0, False)],
)
def test_scale2_edges_leave_no_gap(edge, at, above, o2):
    assert sub("spo2", float(edge), scale=2, o2=o2) == at
    assert sub("spo2", math.nextafter(float(edge), math.inf), scale=2, o2=o2) == above


def test_integer_and_float_inputs_agree():
    assert sub("pulse", 130) == sub("pulse", 130.0) == 2


# --- aggregate, band and response --------------------------------------------------------------

def full(**changes) -> Observations:
    return Observations(**{**NORMAL, **changes})


BAND_CASES = [
    # (observations, score, band, single3)
    (full(), 0, "low", False),
    (full(pulse=95), 1, "low", False),
    (full(rr=22, o2=True), 4, "low", False),
    (full(acvpu="C"), 3, "low-medium", True),
    (full(acvpu="C", pulse=95), 4, "low-medium", True),
    (full(rr=22, spo2=93, pulse=95), 5, "medium", False),
    (full(rr=22, spo2=93, o2=True), 6, "medium", False),
    # A 3 in one parameter with aggregate >=5 is medium, not low-medium.
    (full(acvpu="V", rr=22), 5, "medium", True),
    (full(temp=34.0, sbp=95, pulse=95), 6, "medium", True),
    (full(rr=22, spo2=93, o2=True, pulse=95), 7, "high", False),
    (full(acvpu="U", sbp=85, pulse=95), 7, "high", True),
    (Observations(rr=30, spo2=80, o2=True, sbp=80, pulse=140, acvpu="U", temp=34.0), 20, "high", True),
    (Observations(rr=30, spo2=99, scale=2, o2=True, sbp=80, pulse=140, acvpu="U", temp=34.0), 20, "high", True),
]


@pytest.mark.parametrize("obs, total, band, single3", BAND_CASES)
def test_aggregate_band_and_response(obs, total, band, single3):
    r = score(obs)
    assert (r.score, r.band, r.single3) == (total, band, single3)
    assert r.partial is False and r.missing == []
    assert list(r.subscores) == ALL7
    assert r.response == (news2.RESPONSE_ZERO if total == 0 else news2.RESPONSE[band])


def test_response_texts_follow_chart_4():
    assert score(full()).response == "observations at least 12-hourly"
    assert score(full(pulse=95)).response.startswith("at least 4–6-hourly")
    assert "urgent review" in score(full(acvpu="C")).response
    assert "informs the medical team at once" in score(full(acvpu="V", rr=22)).response
    assert "critical-care" in score(full(acvpu="U", sbp=85, pulse=95)).response


# --- partial / missing -------------------------------------------------------------------------

def test_empty_observations_are_partial_zero():
    r = score(Observations())
    assert r.score == 0 and r.band == "low" and r.partial is True
    assert r.missing == ALL7 and r.subscores == {} and r.single3 is False and r.scale == 1
    assert r.response == news2.RESPONSE_ZERO


def test_all_present_is_not_partial():
    r = score(full())
    assert r.partial is False and r.missing == [] and set(r.subscores) == set(ALL7)


@pytest.mark.parametrize("absent", ALL7)
def test_each_missing_parameter_is_named(absent):
    r = score(full(**{absent: None}))
    assert r.partial is True and r.missing == [absent] and absent not in r.subscores


def test_board_only_parameters_are_partial_in_chart_order():
    r = score(Observations(pulse=72, spo2=96, temp=36.8))
    assert r.missing == ["rr", "o2", "sbp", "acvpu"] and r.partial


# --- nonsense is rejected, naming the parameter ------------------------------------------------

@pytest.mark.parametrize("param", ["rr", "spo2", "sbp", "pulse", "temp"])
@pytest.mark.parametrize("bad", [-1, -0.01, math.nan, math.inf, -math.inf, "12", True])
def test_bad_numbers_raise_naming_the_parameter(param, bad):
    with pytest.raises(ValueError, match=param):
        score(Observations(**{param: bad}))


@pytest.mark.parametrize("bad", [100.01, 101, 120])
def test_spo2_above_100_is_rejected(bad):
    with pytest.raises(ValueError, match="spo2"):
        score(Observations(spo2=bad))


@pytest.mark.parametrize(
    "kwargs, name",
    [({"scale": 3}, "scale"), ({"scale": True}, "scale"), ({"acvpu": "X"}, "acvpu"),
     ({"acvpu": "a"}, "acvpu"), ({"o2": 1}, "o2")],
)
def test_bad_categoricals_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        score(Observations(**kwargs))


def test_zero_is_a_value_not_missing():
    r = score(Observations(pulse=0))
    assert r.subscores == {"pulse": 3}


# --- properties --------------------------------------------------------------------------------

def maybe(strategy):
    return st.none() | strategy


reals = lambda hi: st.floats(min_value=0, max_value=hi, allow_nan=False)  # noqa: E731

observations = st.builds(
    Observations,
    rr=maybe(reals(80)),
    spo2=maybe(reals(100)),
    scale=st.sampled_from([1, 2]),
    o2=st.sampled_from([None, True, False]),
    sbp=maybe(reals(300)),
    pulse=maybe(reals(300)),
    acvpu=st.sampled_from([None, "A", "C", "V", "P", "U"]),
    temp=maybe(reals(45)),
)


@given(observations)
@settings(max_examples=500)
def test_score_is_sum_of_subscores_and_in_range(obs):
    r = score(obs)
    assert r.score == sum(r.subscores.values())
    assert 0 <= r.score <= 20
    assert set(r.subscores) | set(r.missing) == set(ALL7)
    assert not set(r.subscores) & set(r.missing)
    assert r.partial == bool(r.missing)
    assert r.single3 == (3 in r.subscores.values())
    expected = "high" if r.score >= 7 else "medium" if r.score >= 5 else "low-medium" if r.single3 else "low"
    assert r.band == expected


# The docs/clinical.md rows as printed (inclusive integer or 0.1 degC rows), and the table's step.
INF = math.inf
PRINTED = {
    "rr": (1, [(0, 8, 3), (9, 11, 1), (12, 20, 0), (21, 24, 2), (25, INF, 3)]),
    "spo2": (1, [(0, 91, 3), (92, 93, 2), (94, 95, 1), (96, 100, 0)]),
    "sbp": (1, [(0, 90, 3), (91, 100, 2), (101, 110, 1), (111, 219, 0), (220, INF, 3)]),
    "pulse": (1, [(0, 40, 3), (41, 50, 1), (51, 90, 0), (91, 110, 1), (111, 130, 2), (131, INF, 3)]),
    "temp": (
        Fraction(1, 10),
        [(0, Fraction(350, 10), 3), (Fraction(351, 10), 36, 1), (Fraction(361, 10), 38, 0),
         (Fraction(381, 10), 39, 1), (Fraction(391, 10), INF, 2)],
    ),
}
RANGES = {"rr": 80, "spo2": 100, "sbp": 300, "pulse": 300, "temp": 45}


def printed_points(param: str, value: float) -> int:
    # Half-open rule: a real value scores as the printed row holding its ceiling at the table's step.
    step, rows = PRINTED[param]
    ceiled = math.ceil(Fraction(value) / step) * step
    hits = [p for lo, hi, p in rows if lo <= ceiled <= hi]
    assert len(hits) == 1, (param, value, ceiled)
    return hits[0]


@pytest.mark.parametrize("param", list(RANGES))
@given(data=st.data())
def test_matches_printed_table_with_ceiling_rule(param, data):
    value = data.draw(reals(RANGES[param]))
    assert sub(param, value) == printed_points(param, value)


@given(reals(100), st.booleans())
def test_scale2_matches_printed_table(value, on_o2):
    ceiled = math.ceil(value)
    if ceiled <= 83:
        expected = 3
    elif ceiled <= 85:
        expected = 2
    elif ceiled <= 87:
        expected = 1
    elif ceiled <= 92 or not on_o2:
        expected = 0
    else:
        expected = 1 if ceiled <= 94 else 2 if ceiled <= 96 else 3
    assert sub("spo2", value, scale=2, o2=on_o2) == expected


# Centre of the normal band for each parameter: the sub-score must not fall moving away from it.
CENTRES = {"rr": 16, "spo2": 100, "sbp": 160, "pulse": 70, "temp": 37.0}
SCALE2_CENTRE_ON_O2 = 90


def assert_monotone_away(points_at, centre, a, b):
    a, b = sorted((a, b))
    if b <= centre:
        assert points_at(a) >= points_at(b)
    if a >= centre:
        assert points_at(b) >= points_at(a)


@pytest.mark.parametrize("param", list(CENTRES))
@given(data=st.data())
def test_monotone_away_from_normal(param, data):
    a = data.draw(reals(RANGES[param]))
    b = data.draw(reals(RANGES[param]))
    assert_monotone_away(lambda v: sub(param, v), CENTRES[param], a, b)


@given(reals(100), reals(100), st.sampled_from([None, False, True]))
def test_scale2_monotone_away_from_target(a, b, o2):
    # On air (or unknown) the target band extends to 100 %; on oxygen high SpO2 scores again.
    centre = SCALE2_CENTRE_ON_O2 if o2 else 100
    assert_monotone_away(lambda v: sub("spo2", v, scale=2, o2=o2), centre, a, b)


@pytest.mark.parametrize("param", list(RANGES))
@given(data=st.data())
def test_no_gaps_any_real_scores(param, data):
    value = data.draw(reals(RANGES[param]))
    assert sub(param, value) in {0, 1, 2, 3}


@given(reals(300))
def test_no_gaps_pulse_0_to_300(value):
    assert sub("pulse", value) in {0, 1, 2, 3}


# --- calculator command ------------------------------------------------------------------------

REQUIRED_KEYS = {"score", "band", "partial", "subscores", "response", "missing", "single3", "scale"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wardwatch news2")
    news2calc.add_arguments(p)
    return p


def run_cli(argv, capsys):
    rc = news2calc.run(parser().parse_args(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def one_json_line(out: str) -> dict:
    lines = out.splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


def test_cli_prints_one_json_line(capsys):
    rc, out, err = run_cli(
        ["--rr", "16", "--spo2", "97", "--air", "--sbp", "120", "--pulse", "70", "--acvpu", "a", "--temp", "37"],
        capsys,
    )
    assert rc == 0 and err == ""
    doc = one_json_line(out)
    assert REQUIRED_KEYS <= set(doc)
    assert doc["score"] == 0 and doc["band"] == "low" and doc["partial"] is False
    assert doc["response"] == "observations at least 12-hourly"


def test_cli_scale2_on_oxygen(capsys):
    rc, out, _ = run_cli(["--o2", "--spo2", "95", "--scale", "2"], capsys)
    doc = one_json_line(out)
    assert rc == 0
    assert doc["subscores"] == {"spo2": 2, "o2": 2}
    assert doc["scale"] == 2 and doc["partial"] is True
    assert doc["missing"] == ["rr", "sbp", "pulse", "acvpu", "temp"]


def test_cli_no_options_is_partial_zero(capsys):
    rc, out, _ = run_cli([], capsys)
    doc = one_json_line(out)
    assert rc == 0 and doc["score"] == 0 and doc["missing"] == ALL7


def test_cli_fractional_values(capsys):
    _, out, _ = run_cli(["--temp", "35.05", "--spo2", "91.5"], capsys)
    assert one_json_line(out)["subscores"] == {"spo2": 2, "temp": 1}


@pytest.mark.parametrize(
    "argv, name",
    [(["--spo2", "120"], "spo2"), (["--pulse", "-5"], "pulse"), (["--temp", "nan"], "temp")],
)
def test_cli_invalid_value_exits_2_naming_it(argv, name, capsys):
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2 and out == "" and name in err


@pytest.mark.parametrize(
    "argv", [["--o2", "--air"], ["--scale", "3"], ["--acvpu", "X"], ["--rr", "fast"]]
)
def test_cli_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2


def module(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.news2calc", *argv],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )


def test_module_entry_point():
    p = module("--o2", "--spo2", "95", "--scale", "2")
    assert p.returncode == 0, p.stderr
    doc = one_json_line(p.stdout)
    assert REQUIRED_KEYS <= set(doc)
    assert doc["subscores"]["spo2"] == 2 and doc["subscores"]["o2"] == 2


def test_module_invalid_spo2_exits_2():
    p = module("--spo2", "120")
    assert p.returncode == 2 and "spo2" in p.stderr and p.stdout == ""


def test_module_o2_and_air_together_is_usage_error():
    p = module("--o2", "--air")
    assert p.returncode == 2 and "--air" in p.stderr
