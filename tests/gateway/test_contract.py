"""The contract decoder, from tables; the JSON Schema must agree with it."""

import json
from pathlib import Path

import jsonschema

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.contract import MAX_AGE_MS, MAX_PAYLOAD, REASONS, Rejected, decode_reading, decode_status, parse_topic

READING_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((Path(__file__).parents[2] / "docs" / "schema" / "reading.v1.schema.json").read_text())
)
NOW = 1_800_000_000_000
GOOD = {
    "v": 1, "dev": "bed-01", "seq": 7, "ts": NOW - 1000, "tq": 1, "hr": 72, "spo2": 97, "temp": 36.8,
    "pi": 2.4, "sqi": 0.93, "probe": "ok", "batt": 88, "rssi": -61, "sim": False,
}


def enc(**changes):
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def test_valid_reading_is_accepted_and_schema_valid(reading_schema):
    r = decode_reading(enc(), "bed-01", NOW)
    assert (r.dev, r.seq, r.hr, r.spo2, r.temp, r.probe) == ("bed-01", 7, 72, 97, 36.8, "ok")
    assert list(reading_schema.iter_errors(GOOD)) == []


def test_unknown_keys_are_ignored():
    assert decode_reading(enc(future_field={"x": [1, 2]}), "bed-01", NOW).seq == 7


def test_optional_batt_rssi_and_nulls():
    r = decode_reading(enc(batt=..., rssi=..., hr=None, spo2=None, temp=None, pi=None, probe="off"), "bed-01", NOW)
    assert (r.batt, r.rssi, r.hr, r.probe) == (None, None, None, "off")


HOSTILE = [
    # (payload, expected reason, schema should also reject)
    (b"not json", "not_json", None),
    (b"", "not_json", None),
    (b"\xff\xfe", "not_json", None),
    (b'{"v":1,', "not_json", None),
    (enc().replace(b'"hr": 72', b'"hr": NaN'), "not_json", None),
    (enc().replace(b'"temp": 36.8', b'"temp": Infinity'), "not_json", None),
    (b"[1,2,3]", "not_object", True),
    (b"42", "not_object", True),
    (b'"text"', "not_object", True),
    (enc(v=2), "bad_version", True),
    (enc(v="1"), "bad_version", True),
    (enc(hr=...), "missing_key", True),
    (enc(dev=...), "missing_key", True),
    (enc(sim=...), "missing_key", True),
    (enc(hr="72"), "wrong_type", True),
    (enc(hr=72.5), "wrong_type", True),
    (enc(seq=True), "wrong_type", True),
    (enc(sim=1), "wrong_type", True),
    (enc(spo2=[97]), "wrong_type", True),
    (enc(hr=19), "out_of_range", True),
    (enc(hr=301), "out_of_range", True),
    (enc(spo2=49), "out_of_range", True),
    (enc(spo2=101), "out_of_range", True),
    (enc(temp=24.9), "out_of_range", True),
    (enc(temp=45.1), "out_of_range", True),
    (enc(pi=-0.1), "out_of_range", True),
    (enc(pi=30.5), "out_of_range", True),
    (enc(sqi=1.01), "out_of_range", True),
    (enc(batt=101), "out_of_range", True),
    (enc(seq=-1), "out_of_range", True),
    (enc(seq=2**32), "out_of_range", True),
    (enc(tq=2), "out_of_range", True),
    (enc(probe="maybe"), "out_of_range", True),
    (enc(dev="BED-01"), "out_of_range", True),
    (enc(dev="other-02"), "device_mismatch", False),
    (enc(ts=NOW + 5 * 60 * 1000 + 1), "future_ts", False),
    (enc(ts=0), "stale_ts", False),  # 1970 with a "synced" clock
    (enc(ts=NOW - MAX_AGE_MS - 1), "stale_ts", False),
    (enc()[:-1] + b',"x":"\xff"}', "not_json", None),  # invalid UTF-8 in an unknown key
    (enc()[:-1] + b',"x":"\xed\xa0\x80"}', "not_json", None),  # a UTF-8-encoded surrogate
    (enc()[:-1] + b',"seq":8}', "ambiguous", None),  # a key given twice
    (enc()[:-1] + b',"dev":"bed-01"}', "ambiguous", None),
    (enc()[:-1] + b',"x":{"a":1,"a":2}}', "ambiguous", None),
    # The fast duplicate check counts '"' + ':' key ends: whitespace before a colon, and a
    # string holding '":' (one key end fewer, one more), must not fool it.
    (enc()[:-1] + b',"seq" :8}', "ambiguous", None),
    (enc()[:-1] + b',"seq"\n\t:8, "x": "\\":"}', "ambiguous", None),
    (enc(extra="x" * 600), "oversize", False),
    (b'{"a":' * 80 + b"1" + b"}" * 80, "missing_key", True),
    (b"[" * 400 + b"]" * 400, "oversize", None),
]


@pytest.mark.parametrize("payload,reason,schema_rejects", HOSTILE, ids=[f"{i}-{h[1]}" for i, h in enumerate(HOSTILE)])
def test_hostile_payloads_are_rejected_with_reason(payload, reason, schema_rejects, reading_schema):
    assert reason in REASONS
    with pytest.raises(Rejected) as info:
        decode_reading(payload, "bed-01", NOW)
    assert info.value.reason == reason
    if schema_rejects is not None:
        doc = json.loads(payload)
        assert (not reading_schema.is_valid(doc)) == schema_rejects


def test_unsynced_clock_may_be_any_value():
    # tq=0: ts is ms since boot, so the future rule does not apply.
    assert decode_reading(enc(tq=0, ts=NOW * 10), "bed-01", NOW).tq == 0


def test_payload_limit_is_inclusive():
    base = enc(pad="")
    payload = base.replace(b'"pad": ""', b'"pad": "' + b"x" * (MAX_PAYLOAD - len(base)) + b'"')
    assert len(payload) == MAX_PAYLOAD
    decode_reading(payload, "bed-01", NOW)


@pytest.mark.parametrize(
    "topic,expected",
    [
        ("wardwatch/v1/w1/bed-01/vitals", ("w1", "bed-01", "vitals")),
        ("wardwatch/v1/icu-2/abc/status", ("icu-2", "abc", "status")),
    ],
)
def test_parse_topic(topic, expected):
    assert parse_topic(topic, "wardwatch/v1") == expected


@pytest.mark.parametrize(
    "topic", ["wardwatch/v2/w1/bed-01/vitals", "wardwatch/v1/w1/bed-01", "wardwatch/v1/W1/bed-01/vitals",
              "wardwatch/v1/w1/ab/vitals", "wardwatch/v1/w1/bed-01/vitals/x", "other"]
)
def test_bad_topics(topic):
    with pytest.raises(Rejected) as info:
        parse_topic(topic, "wardwatch/v1")
    assert info.value.reason == "bad_topic"


def test_status_and_last_will(status_schema):
    online = {"v": 1, "dev": "bed-01", "state": "online", "fw": "0.1.0", "board": "host", "uptime_s": 5,
              "outbox": 0, "dropped": 0, "batt": None, "rssi": None}
    assert decode_status(json.dumps(online).encode(), "bed-01").state == "online"
    will = {"v": 1, "dev": "bed-01", "state": "offline"}
    assert decode_status(json.dumps(will).encode(), "bed-01").state == "offline"
    assert status_schema.is_valid(online) and status_schema.is_valid(will)
    with pytest.raises(Rejected):
        decode_status(json.dumps({**will, "state": "asleep"}).encode(), "bed-01")


readings = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "dev": st.from_regex(r"\A[a-z0-9][a-z0-9-]{2,31}\Z"),
        "seq": st.integers(0, 2**32 - 1),
        # Within the contract's time rules (not a schema's to state): no older than MAX_AGE_MS.
        "ts": st.integers(NOW - MAX_AGE_MS, NOW),
        "tq": st.sampled_from([0, 1]),
        "hr": st.none() | st.integers(20, 300),
        "spo2": st.none() | st.integers(50, 100),
        "temp": st.none() | st.floats(25.0, 45.0).map(lambda t: round(t, 1)),
        "pi": st.none() | st.floats(0, 30),
        "sqi": st.floats(0, 1),
        "probe": st.sampled_from(["ok", "off", "fault"]),
        "batt": st.none() | st.integers(0, 100),
        "rssi": st.none() | st.integers(-120, 0),
        "sim": st.booleans(),
    }
)


@settings(max_examples=300, deadline=None)
@given(readings)
def test_every_schema_valid_reading_is_accepted(doc):
    assert READING_SCHEMA.is_valid(doc)
    r = decode_reading(json.dumps(doc).encode(), doc["dev"], NOW)
    assert (r.seq, r.hr, r.spo2, r.probe) == (doc["seq"], doc["hr"], doc["spo2"], doc["probe"])


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=600).map(str.encode))
def test_arbitrary_bytes_never_crash_the_decoder(payload):
    try:
        decode_reading(payload, "bed-01", NOW)
    except Rejected as rej:
        assert rej.reason in REASONS
