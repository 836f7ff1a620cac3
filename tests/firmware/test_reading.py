"""Contract v1 payloads from the firmware: schema-valid, at most 512 bytes, nulls where the
probe is off, exact key set."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedside import VERSION
from bedside.reading import Encoder, status, topic, valid_id, will

KEYS = ["v", "dev", "seq", "ts", "tq", "hr", "spo2", "temp", "pi", "sqi", "probe", "batt", "rssi", "sim"]
OK = {"hr": 72.4, "spo2": 97.6, "temp": 36.94, "pi": 3.1234, "sqi": 0.951, "probe": "ok"}


def test_reading_keys_values_and_schema(reading_schema):
    raw = Encoder("sim-w1-01", sim=True).reading(5, 1_700_000_000_123, 1, OK, 87, -61)
    doc = json.loads(raw)
    assert list(doc) == KEYS
    assert doc == {"v": 1, "dev": "sim-w1-01", "seq": 5, "ts": 1_700_000_000_123, "tq": 1, "hr": 72, "spo2": 98,
                   "temp": 36.9, "pi": 3.12, "sqi": 0.95, "probe": "ok", "batt": 87, "rssi": -61, "sim": True}
    reading_schema.validate(doc)


@pytest.mark.parametrize("probe", ["off", "fault"])
def test_probe_not_ok_gives_nulls(probe, reading_schema):
    doc = json.loads(Encoder("bed-7", sim=False).reading(0, 10, 0, dict(OK, probe=probe, sqi=0.0)))
    reading_schema.validate(doc)
    assert doc["probe"] == probe
    assert doc["hr"] is None and doc["spo2"] is None and doc["pi"] is None
    assert doc["temp"] == 36.9  # a separate sensor: still reported
    assert doc["sim"] is False and doc["tq"] == 0


# Out-of-contract values become null, never a clamped guess; sqi and batt are clamped.
EDGES = [
    ({"hr": 19.4}, "hr", None),
    ({"hr": 19.6}, "hr", 20),
    ({"hr": 300.4}, "hr", 300),
    ({"hr": 301}, "hr", None),
    ({"spo2": 100.4}, "spo2", 100),
    ({"spo2": 100.6}, "spo2", None),
    ({"spo2": 49.4}, "spo2", None),
    ({"temp": 24.9}, "temp", None),
    ({"temp": 45.04}, "temp", 45.0),
    ({"temp": 45.06}, "temp", None),
    ({"temp": 37.05}, "temp", 37.0),  # binary 37.05 is below .05: rounds down, 1 decimal
    ({"pi": 30.5}, "pi", None),
    ({"pi": -0.1}, "pi", None),
    ({"sqi": 1.7}, "sqi", 1.0),
    ({"sqi": -2}, "sqi", 0.0),
    ({"sqi": math.nan}, "sqi", 0.0),
    ({"hr": math.nan}, "hr", None),
    ({"spo2": math.inf}, "spo2", None),
    ({"temp": -math.inf}, "temp", None),
]


@pytest.mark.parametrize("over,key,expected", EDGES)
def test_value_edges(over, key, expected, reading_schema):
    doc = json.loads(Encoder("dev-01").reading(1, 1, 1, dict(OK, **over)))
    reading_schema.validate(doc)
    assert doc[key] == expected


def test_status_and_will_validate(status_schema):
    online = json.loads(status("sim-w1-01", VERSION, "host", 12, 3, 0, None, -50))
    status_schema.validate(online)
    assert online["state"] == "online" and online["fw"] == VERSION
    assert online["refused"] == 0 and online["refusal"] is None
    refused = json.loads(status("sim-w1-01", VERSION, "host", 12, 3, 0, None, -50, 2, "not authorized"))
    status_schema.validate(refused)  # the schema allows keys it does not list
    assert refused["refused"] == 2 and refused["refusal"] == "not authorized"
    offline = json.loads(will("sim-w1-01"))
    status_schema.validate(offline)
    assert offline == {"v": 1, "dev": "sim-w1-01", "state": "offline"}


def test_topics_and_ids():
    assert topic("wardwatch/v1", "w1", "sim-w1-01", "vitals") == "wardwatch/v1/w1/sim-w1-01/vitals"
    for good in ["abc", "sim-w1-01", "a" * 32, "0-0"]:
        assert valid_id(good)
    for bad in ["ab", "-ab", "Abc", "a_b", "a" * 33, "a b", "", None, 7, "ä12"]:
        assert not valid_id(bad)
    assert valid_id("w", 1) and not valid_id("", 1)
    with pytest.raises(ValueError):
        Encoder("Bad Id")


ids = st.from_regex(r"\A[a-z0-9][a-z0-9-]{2,31}\Z")
anynum = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20))


@settings(max_examples=250, deadline=None)
@given(
    dev=ids,
    seq=st.integers(0, 2**32 - 1),
    ts=st.integers(0, 2**53),
    tq=st.sampled_from([0, 1]),
    hr=anynum, spo2=anynum, temp=anynum, pi=anynum,
    sqi=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)),
    probe=st.sampled_from(["ok", "off", "fault"]),
    batt=anynum, rssi=anynum, sim=st.booleans(),
)
def test_any_values_give_a_valid_reading_of_at_most_512_bytes(dev, seq, ts, tq, hr, spo2, temp, pi, sqi, probe, batt, rssi, sim, reading_schema):
    raw = Encoder(dev, sim).reading(seq, ts, tq, {"hr": hr, "spo2": spo2, "temp": temp, "pi": pi, "sqi": sqi, "probe": probe}, batt, rssi)
    assert len(raw) <= 512
    doc = json.loads(raw)
    reading_schema.validate(doc)
    assert list(doc) == KEYS
    assert doc["seq"] == seq and doc["ts"] == ts and doc["dev"] == dev
    if doc["temp"] is not None:
        assert doc["temp"] == round(doc["temp"], 1)
    if probe != "ok":
        assert doc["hr"] is doc["spo2"] is doc["pi"] is None
