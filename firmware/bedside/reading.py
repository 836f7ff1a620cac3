"""Payloads and topics of MQTT contract v1 (docs/schema/*.v1.schema.json).

- ``Encoder(dev, sim).reading(seq, ts, tq, vitals, batt, rssi)``: one reading, UTF-8 JSON
  bytes, at most 512 bytes, keys in contract order. Called once per reading, so it formats
  a precomputed template instead of building a dict for ``json.dumps``.
- ``status(...)``: the retained ``online`` status; ``will(dev)``: the ``offline`` last will.
- ``topic(prefix, ward, dev, kind)``: ``<prefix>/<ward>/<dev>/<kind>``.

Units and ranges: hr bpm int 20..300, spo2 % int 50..100, temp degC 25.0..45.0 (1 decimal),
pi % 0..30, sqi 0..1, batt % 0..100, rssi dBm. A value outside its contract range is sent as
null rather than clamped: the gateway would reject the whole reading, and a clamped number
is a guess. sqi and batt are clamped (they describe the device, not the patient). With
``probe`` other than ``ok`` the pulse-oximeter values (hr, spo2, pi) are null.
"""

import json

DEFAULT_PREFIX = "wardwatch/v1"
MAX_PAYLOAD = 512


def valid_id(s, min_len=3):
    """True when ``s`` matches ``[a-z0-9][a-z0-9-]{min_len-1,31}`` (device and ward ids;
    wards allow ``min_len`` 1). No ``re`` needed, which not every board build has."""
    if not isinstance(s, str) or not min_len <= len(s) <= 32:
        return False
    for i, c in enumerate(s):
        if not ("a" <= c <= "z" or "0" <= c <= "9" or (c == "-" and i > 0)):
            return False
    return True


def topic(prefix, ward, dev, kind):
    return "%s/%s/%s/%s" % (prefix, ward, dev, kind)


def _int_in(v, lo, hi):
    # The first test also turns NaN and infinities into null (every comparison is False).
    if v is None or not lo - 1 < v < hi + 1:
        return "null"
    v = int(round(v))
    return "%d" % v if lo <= v <= hi else "null"


class Encoder:
    """Reading encoder for one device. ``dev`` must be a valid device id (not escaped)."""

    def __init__(self, dev, sim=False):
        if not valid_id(dev):
            raise ValueError("invalid device id: %r" % (dev,))
        self._head = '{"v":1,"dev":"%s","seq":' % dev
        self._tail = ',"sim":%s}' % ("true" if sim else "false")

    def reading(self, seq, ts, tq, vitals, batt=None, rssi=None, low=None):
        """Encode one reading. ``vitals`` is a dict with hr, spo2, temp, pi (numbers or
        None), sqi (0..1) and probe ("ok" | "off" | "fault"); see ``bedside.simvitals``.
        ``seq`` 0..2**32-1, ``ts`` ms >= 0, ``tq`` 0 | 1; ``low``: the oldest seq the device
        still holds (end-to-end delivery, docs/protocol.md), or None. Returns bytes."""
        probe = vitals["probe"]
        if probe == "ok":
            hr = _int_in(vitals["hr"], 20, 300)
            spo2 = _int_in(vitals["spo2"], 50, 100)
            pi = vitals["pi"]
            pi = "null" if pi is None or not 0 <= pi <= 30 else "%.2f" % pi
        else:
            if probe != "off":
                probe = "fault"
            hr = spo2 = pi = "null"
        temp = vitals["temp"]
        if temp is not None:
            temp = round(temp, 1)
        temp = "null" if temp is None or not 25.0 <= temp <= 45.0 else "%.1f" % temp
        sqi = vitals["sqi"]
        sqi = 1.0 if sqi > 1 else sqi if sqi >= 0 else 0.0  # NaN -> 0
        if batt is not None:
            batt = 100 if batt > 100 else batt if batt >= 0 else 0 if batt < 0 else None
        return (
            "%s%d,\"ts\":%d,\"tq\":%d,\"hr\":%s,\"spo2\":%s,\"temp\":%s,\"pi\":%s,\"sqi\":%.2f,"
            "\"probe\":\"%s\",\"batt\":%s,\"rssi\":%s%s%s"
            % (
                self._head, seq, ts, tq, hr, spo2, temp, pi, sqi, probe,
                _int_in(batt, 0, 100), _int_in(rssi, -200, 50), "" if low is None else ',"low":%d' % low,
                self._tail,
            )
        ).encode()


def status(dev, fw, board, uptime_s, outbox, dropped, batt=None, rssi=None, refused=0, refusal=None):
    """The retained ``online`` status payload (bytes). ``board`` is esp32 | rp2 | host.
    ``refused``: messages the broker refused (dropped, not retried) since boot; ``refusal``:
    the text of the latest CONNACK refusal since boot, or None (docs/protocol.md)."""
    return json.dumps(
        {
            "v": 1,
            "dev": dev,
            "state": "online",
            "fw": fw,
            "board": board,
            "uptime_s": int(uptime_s),
            "outbox": int(outbox),
            "dropped": int(dropped),
            "batt": batt,
            "rssi": rssi,
            "refused": int(refused),
            "refusal": refusal,
        }
    ).encode()


def will(dev):
    """The last-will payload the broker publishes (retained) when the device vanishes."""
    return ('{"v":1,"dev":"%s","state":"offline"}' % dev).encode()
