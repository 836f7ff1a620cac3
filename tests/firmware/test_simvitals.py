"""Simulated vitals: deterministic per seed, scenarios reach their targets, values inside
the contract's ranges."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedside.reading import Encoder
from bedside.simvitals import RANGES, SCENARIOS, Patient, phases

TIMES = [0, 0.05, 1, 29.9, 45.5, 90, 120.25, 300, 3600, 86400.5]


def test_deterministic_per_seed_whatever_the_call_order():
    a, b = Patient(42, "desaturation"), Patient(42, "desaturation")
    forward = [a.sample(t) for t in TIMES]
    backward = [b.sample(t) for t in reversed(TIMES)][::-1]
    assert forward == backward
    assert Patient(43, "desaturation").sample(10) != forward[2]
    assert Patient(42).baseline != Patient(43).baseline


def test_noise_is_plausible():
    """Pulse wanders a few bpm second to second, SpO2 about a percent, temperature barely."""
    p = Patient(5)
    samples = [p.sample(t / 10) for t in range(6000)]  # 10 min at 10 Hz
    for key, max_step, min_spread, max_spread in [("hr", 2.0, 3, 25), ("spo2", 0.5, 0.5, 4), ("temp", 0.01, 0.0, 0.4)]:
        values = [s[key] for s in samples]
        steps = [abs(x - y) for x, y in zip(values, values[1:])]
        assert max(steps) <= max_step, key
        assert min_spread <= max(values) - min(values) <= max_spread, key


# (scenario, time, key, target, tolerance): each ramp reaches its target, then comes back
TARGETS = [
    ("desaturation", 130, "spo2", 84, 1.6),
    ("desaturation", 130, "hr", 112, 9),
    ("desaturation", 330, "spo2", "base", 1.6),
    ("tachycardia", 100, "hr", 138, 9),
    ("tachycardia", 310, "hr", "base", 9),
    ("bradycardia", 100, "hr", 42, 9),
    ("fever", 220, "temp", 39.4, 0.15),
    ("fever", 220, "hr", 104, 9),
    ("stable", 500, "spo2", "base", 1.6),
]


@pytest.mark.parametrize("name,t,key,target,tol", TARGETS)
@pytest.mark.parametrize("seed", [0, 1, 99])
def test_scenarios_reach_their_targets(name, t, key, target, tol, seed):
    p = Patient(seed, name)
    if target == "base":
        target = p.baseline[key]
    assert abs(p.sample(t)[key] - target) <= tol
    assert abs(p.target(key, t) - target) < 1e-9


def test_ramps_are_gradual():
    p = Patient(3, "desaturation")
    base = p.baseline["spo2"]
    assert p.target("spo2", 30) == pytest.approx(base)
    assert p.target("spo2", 75) == pytest.approx((base + 84) / 2)  # half way through 90 s


def test_probe_off_window():
    p = Patient(3, "probe_off")
    assert p.sample(29.9)["probe"] == "ok"
    off = p.sample(30)
    assert off["probe"] == "off" and off["hr"] is off["spo2"] is off["pi"] is None and off["sqi"] == 0
    assert off["temp"] is not None
    assert p.sample(75)["probe"] == "ok"


def test_power_and_network_events():
    p = Patient(1, "power_off")
    assert p.events == [(60, "power", 30)]
    assert [p.power_on(t) for t in (59.9, 60, 89.9, 90)] == [True, False, False, True]
    n = Patient(1, "network_outage")
    assert n.events == [(60, "network", 30)]
    assert [n.network_up(t) for t in (59.9, 60, 90)] == [True, False, True]
    forever = Patient(1, [{"at_s": 5, "power": "off"}])
    assert forever.events == [(5, "power", None)] and not forever.power_on(10**6)


def test_spec_forms_start_offset_and_baseline():
    p = Patient(1, {"name": "tachycardia", "start_s": 100, "baseline": {"hr": 70}, "phases": [{"at_s": 500, "probe": "off"}]})
    assert p.baseline["hr"] == 70
    assert p.target("hr", 129) == 70 and p.target("hr", 190) == 138
    assert p.probe(599) == "ok" and p.probe(600) == "off"
    explicit = Patient(1, [{"at_s": 10, "ramp_s": 10, "temp": 40.0}])
    assert explicit.target("temp", 15) == pytest.approx((explicit.baseline["temp"] + 40) / 2)


BAD = [
    ("nope", "unknown scenario"),
    ([{"ramp_s": 3}], "at_s"),
    ([{"at_s": -1}], "at_s"),
    ([{"at_s": 1, "ramp_s": -1}], "ramp_s"),
    ([{"at_s": 1, "hr": 400}], "hr"),
    ([{"at_s": 1, "hr": "high"}], "hr"),
    ([{"at_s": 1, "spo2": True}], "spo2"),
    ([{"at_s": 1, "probe": "loose"}], "probe"),
    ([{"at_s": 1, "power": "on"}], "power"),
    ([{"at_s": 1, "network": "up"}], "network"),
    ([{"at_s": 1, "for_s": 3}], "for_s"),
    ([{"at_s": 1, "power": "off", "for_s": 0}], "for_s"),
    ([{"at_s": 1, "colour": "red"}], "colour"),
    ({"name": "stable", "extra": 1}, "extra"),
    ({"baseline": {"bp": 120}}, "bp"),
    (["x"], "not a table"),
]


@pytest.mark.parametrize("spec,message", BAD)
def test_bad_scenarios_are_refused_with_a_reason(spec, message):
    with pytest.raises(ValueError, match=message):
        phases(spec)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(-(2**40), 2**40),
    name=st.sampled_from(sorted(SCENARIOS)),
    t=st.floats(0, 10**7, allow_nan=False),
)
def test_values_stay_in_contract_ranges(seed, name, t, reading_schema):
    v = Patient(seed, name).sample(t)
    for key, (lo, hi) in RANGES.items():
        if v[key] is not None:
            assert lo <= v[key] <= hi, key
    reading_schema.validate(json.loads(Encoder("sim-w1-01", True).reading(0, 0, 1, v)))


@settings(max_examples=100, deadline=None)
@given(
    targets=st.fixed_dictionaries({}, optional={k: st.floats(lo, hi) for k, (lo, hi) in RANGES.items()}),
    at=st.floats(0, 1000),
    ramp=st.floats(0, 1000),
    t=st.floats(0, 5000),
)
def test_extreme_targets_stay_in_range(targets, at, ramp, t):
    v = Patient(7, [dict(targets, at_s=at, ramp_s=ramp)]).sample(t)
    for key, (lo, hi) in RANGES.items():
        assert lo <= v[key] <= hi, key
