"""MQTT contract v1: topics and the validated decoding of readings and status.

Pure functions; the ingest shell calls them once per message. The JSON Schemas in
``docs/schema/`` state the same contract; tests check both agree.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

import msgspec

MAX_PAYLOAD = 512
FUTURE_SLACK_MS = 5 * 60 * 1000
# Older than this with a synced clock, a reading cannot be genuine: the broker keeps the
# gateway's queue for a day (mqtt.session_expiry_s) and an outbox holds minutes to hours.
# ts = 0 (1970) with tq = 1 is the usual sign of a clock that never was set.
MAX_AGE_MS = 48 * 3600 * 1000
# The ids of the contract, one definition each for the whole gateway. A device id is also
# the device's MQTT user name; ward and device ids are topic levels.
DEVICE_PATTERN = "[a-z0-9][a-z0-9-]{2,31}"
WARD_PATTERN = "[a-z0-9][a-z0-9-]{0,31}"
# A bed id is a level of the alarm topics (<prefix>/<ward>/alarms/active/<bed>).
BED_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]{0,31}"
# The bed tag of a reading whose device is not registered to a bed of its ward.
UNASSIGNED = "unassigned"
# The bed id of an alarm about a whole ward (alarms_delayed); no bed id can be "-".
WARD_LEVEL = "-"
ID_RE = re.compile(f"^{DEVICE_PATTERN}$")
WARD_RE = re.compile(f"^{WARD_PATTERN}$")
BED_RE = re.compile(f"^{BED_PATTERN}$")

Seq = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
DeviceId = Annotated[str, msgspec.Meta(pattern=ID_RE.pattern)]


class Reading(msgspec.Struct, frozen=True):
    """A validated reading (see docs/protocol.md). Units: hr bpm, spo2 %, temp degC, pi %."""

    v: Literal[1]
    dev: DeviceId
    seq: Seq
    ts: Annotated[int, msgspec.Meta(ge=0)]
    tq: Literal[0, 1]
    hr: Annotated[int, msgspec.Meta(ge=20, le=300)] | None
    spo2: Annotated[int, msgspec.Meta(ge=50, le=100)] | None
    temp: Annotated[float, msgspec.Meta(ge=25.0, le=45.0)] | None
    pi: Annotated[float, msgspec.Meta(ge=0.0, le=30.0)] | None
    sqi: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    probe: Literal["ok", "off", "fault"]
    sim: bool
    batt: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    rssi: int | None = None
    # The oldest seq the device still holds unconfirmed (end-to-end delivery; optional).
    low: Seq | None = None


class Ident(msgspec.Struct, frozen=True):
    """What a rejected reading still tells, when it can: whose, and which (for the watermark)."""

    dev: str
    seq: Seq
    low: Seq


class Status(msgspec.Struct, frozen=True):
    """A device status (retained) or its last will (state only)."""

    v: Literal[1]
    dev: DeviceId
    state: Literal["online", "offline"]
    fw: str | None = None
    board: Literal["esp32", "rp2", "host"] | None = None
    uptime_s: Annotated[int, msgspec.Meta(ge=0)] | None = None
    outbox: Annotated[int, msgspec.Meta(ge=0)] | None = None
    dropped: Annotated[int, msgspec.Meta(ge=0)] | None = None
    batt: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    rssi: int | None = None
    refused: Annotated[int, msgspec.Meta(ge=0)] | None = None
    refusal: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class Rejected(Exception):
    """A message the gateway refuses. ``reason`` is one of REASONS; ``detail`` says where."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# Every reason a message can be rejected for; the `rejected` measurement is tagged with these.
REASONS = (
    "oversize",
    "not_json",
    "not_object",
    "missing_key",
    "wrong_type",
    "out_of_range",
    "bad_version",
    "ambiguous",
    "device_mismatch",
    "future_ts",
    "stale_ts",
    "bad_topic",
)

_reading_decoder = msgspec.json.Decoder(Reading)
_ident_decoder = msgspec.json.Decoder(Ident)
_status_decoder = msgspec.json.Decoder(Status)
_generic_decoder = msgspec.json.Decoder()
_KEY_END = re.compile(rb'"[ \t\r\n]*:')


def parse_topic(topic: str, prefix: str) -> tuple[str, str, str]:
    """Split ``<prefix>/<ward>/<device>/<kind>`` into (ward, device, kind).

    Raises Rejected("bad_topic") for anything else, including ids outside the contract.
    """
    if not topic.startswith(prefix + "/"):
        raise Rejected("bad_topic", topic[:80])
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) != 3 or not WARD_RE.match(parts[0]) or not ID_RE.match(parts[1]):
        raise Rejected("bad_topic", topic[:80])
    return parts[0], parts[1], parts[2]


def _classify(err: msgspec.ValidationError) -> str:
    text = str(err)
    if text.startswith("Object missing required field"):
        return "missing_key"
    if text.startswith("Expected `object`") and " - at " not in text:
        return "not_object"
    if " - at `$.v`" in text:
        return "bad_version"
    if ">=" in text or "<=" in text or "Expected `str` matching regex" in text or "Invalid enum value" in text:
        return "out_of_range"
    return "wrong_type"


class _Duplicate(Exception):
    pass


def _unique_keys(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Duplicate(sorted(k for k in set(keys) if keys.count(k) > 1)[0])
    return dict(pairs)


def _decode(decoder, payload: bytes):
    if len(payload) > MAX_PAYLOAD:
        raise Rejected("oversize", f"{len(payload)} bytes > {MAX_PAYLOAD}")
    try:
        message = decoder.decode(payload)
    except msgspec.ValidationError as err:
        raise Rejected(_classify(err), str(err)) from None
    except msgspec.DecodeError as err:  # includes NaN/Infinity, truncation, bad UTF-8 in known keys
        raise Rejected("not_json", str(err)) from None
    # What msgspec lets through and the contract does not: invalid UTF-8 anywhere (msgspec
    # skips unknown keys unread), and a key given twice (parsers disagree on which value
    # counts, so the reading is ambiguous). Only valid messages pay for this second pass.
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Rejected("not_json", f"not UTF-8: {err.reason} at byte {err.start}") from None
    # Fast proof that no key is given twice, at any level (1.6 us against 4 us for the full
    # parse below): every key ends in '"' then ':' (JSON whitespace between), and strings
    # can only add such matches; so as many matches as distinct top-level keys leaves no
    # room for a repeated key, nor for any nested one. Otherwise the full parse decides.
    if len(_KEY_END.findall(payload)) == len(_generic_decoder.decode(payload)):
        return message
    try:
        json.loads(text, object_pairs_hook=_unique_keys)
    except _Duplicate as dup:
        raise Rejected("ambiguous", f"key {dup.args[0]!r} given more than once") from None
    return message


def decode_reading(payload: bytes, topic_device: str, now_ms: int, max_age_ms: int = MAX_AGE_MS) -> Reading:
    """Decode and validate one reading published on ``topic_device``'s vitals topic.

    ``now_ms`` is the gateway's epoch time in ms, used for the future and stale timestamp
    rules (``max_age_ms``: see MAX_AGE_MS). Returns the Reading or raises Rejected with one
    of REASONS.
    """
    reading = _decode(_reading_decoder, payload)
    if reading.dev != topic_device:
        raise Rejected("device_mismatch", f"dev {reading.dev!r} on topic of {topic_device!r}")
    if reading.tq == 1 and reading.ts > now_ms + FUTURE_SLACK_MS:
        raise Rejected("future_ts", f"ts {reading.ts} is {(reading.ts - now_ms) // 1000} s ahead")
    if reading.tq == 1 and reading.ts < now_ms - max_age_ms:
        raise Rejected("stale_ts", f"ts {reading.ts} is {(now_ms - reading.ts) // 1000} s old")
    return reading


def ident_of(payload: bytes) -> Ident | None:
    """``dev``, ``seq`` and ``low`` of a payload that failed validation, if it has them."""
    if len(payload) > MAX_PAYLOAD:
        return None
    try:
        return _ident_decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def decode_status(payload: bytes, topic_device: str) -> Status:
    """Decode a status or last-will payload; same rules as readings for size and device."""
    status = _decode(_status_decoder, payload)
    if status.dev != topic_device:
        raise Rejected("device_mismatch", f"dev {status.dev!r} on topic of {topic_device!r}")
    return status
