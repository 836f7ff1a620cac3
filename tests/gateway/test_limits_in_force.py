"""What a display colours by: the limits in force for a bed, and which of them a value is past."""

from __future__ import annotations

import pytest

from gateway.clinical.rules import Limits, breached, limits_in_force, parse_overrides
from gateway.config import load_limits

DEFAULTS = limits_in_force(Limits().settings_for("w1", "01"))


def test_limits_in_force_are_the_vital_sign_rules_first_level():
    assert DEFAULTS["spo2_low"] == 90.0 and DEFAULTS["spo2_low_priority"] == "medium"
    assert DEFAULTS["spo2_desat"] == 80.0 and DEFAULTS["spo2_desat_priority"] == "high"
    assert DEFAULTS["hr_high"] == 120.0 and DEFAULTS["temp_low"] == 35.0
    # Technical and score rules are the engine's business, not a value's colour.
    assert not any(k.startswith(("probe_off", "battery", "news2", "sqi")) for k in DEFAULTS)


@pytest.mark.parametrize(
    "param,value,expected",
    [
        ("spo2", 90, None),            # at the limit: not below it
        ("spo2", 89, "medium"),
        ("spo2", 79, "high"),          # desaturation outranks SpO2 low
        ("hr", 120, None),
        ("hr", 121, "medium"),
        ("hr", 151, "high"),
        ("hr", 49, "medium"),
        ("hr", 39, "high"),
        ("temp", 39.0, None),
        ("temp", 39.1, "low"),
        ("temp", 34.9, "low"),
        ("pi", 0.1, None),             # no rule on perfusion
    ],
)
def test_breached_by_default_limits(param, value, expected):
    assert breached(DEFAULTS, param, value) == expected


def test_ward_bed_and_patient_layers_change_what_is_in_force(tmp_path):
    f = tmp_path / "limits.toml"
    f.write_text("[ward.w1.spo2_low]\nlimit = 88\nclear = 90\n\n[ward.w1.bed.02.hr_high]\nlimit = 110\nclear = 105\n"
                 "priority = \"high\"\n")
    limits = load_limits(f)
    ward = limits_in_force(limits.settings_for("w1", "01"))
    bed = limits_in_force(limits.settings_for("w1", "02"))
    patient = limits_in_force(limits.settings_for("w1", "01", parse_overrides(["spo2_low.limit=85", "spo2_low.clear=87"])))
    assert (ward["spo2_low"], bed["spo2_low"], patient["spo2_low"]) == (88.0, 88.0, 85.0)
    assert breached(ward, "spo2", 89) is None and breached(DEFAULTS, "spo2", 89) == "medium"
    assert breached(bed, "hr", 115) == "high" and breached(ward, "hr", 115) is None
    assert limits_in_force(limits.settings_for("w2", "01")) == DEFAULTS
