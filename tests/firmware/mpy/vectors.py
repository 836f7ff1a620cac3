# The same inputs through the pure bedside modules; run on MicroPython and on CPython by
# tests/firmware/test_micropython.py, which compares the printed results. MicroPython syntax.
# `brokerpackets` is the tests' broker side (tests/firmware/brokerpackets.py), which that test
# copies into MicroPython's /lib: boards do not carry it.
import json

import brokerpackets as bp
from bedside import clock, mqttpacket as mp, outbox, reading, simvitals

res = {}
res["varint"] = [mp.varint(n).hex() for n in (0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455)]
res["decode_varint"] = [mp.decode_varint(bytes.fromhex(h)) for h in ("7f", "8001", "ff7f", "808001", "ffffff7f")]
conn = mp.connect("dev1", 30, True, "u", "p", ("t/s", b"off", 1, True))
res["connect"] = conn.hex()
res["parse_connect"] = str(sorted(bp.parse_connect(conn[2:]).items()))
p = mp.publish("a/b", b"hi", 1, True, False, 10)
res["publish"] = p.hex()
res["dup"] = mp.set_dup(p).hex()
r = mp.split(p + bp.PINGRESP_PKT)
res["split"] = list(r)
res["parse_publish"] = str(mp.parse_publish(r[1], p[r[2]:r[3]]))
res["subscribe"] = mp.subscribe(1, [("a/#", 1)]).hex()
res["suback"] = str(mp.parse_suback(bp.suback(7, [1, 0x80])[2:]))
res["puback"] = mp.parse_pid(mp.puback(65535)[2:])


def refused(f, *args):
    try:
        f(*args)
        return False
    except ValueError:
        return True


# Issue 9 items 10-11: the same refusals on both (MicroPython's decode() would pass surrogates
# and overlong forms; the codec walks the bytes itself).
res["bad_topics"] = [refused(mp.topic_name, t) for t in (
    "", "a/+", "a/#", "a\x00b", b"a\xffb", b"\xed\xa0\x80", b"\xc0\x80", "a\x01b", "a\u0085b", "a\ufffeb",
    b"\xe2\x82", "ok/topic", "\u00e9/\u20ac")]
res["bad_filters"] = [refused(mp.topic_filter, t) for t in ("a#", "a/#/b", "a+", "#", "a/+/b", "")]
res["bad_packets"] = [
    refused(mp.connect, "", 30, False), refused(mp.connect, "", 30, True),
    refused(mp.connect, "c", 30, True, None, None, ("t", b"off", 3, True)),
    refused(mp.connect, "c", 30, True, None, None, ("t", b"off", 2, True)),
    refused(mp.publish, "a", b"x", 1, False, False, 0), refused(mp.publish, "a", b"x", 2, False, False, 1),
    refused(mp.publish, "a", b"x", 0), refused(mp.subscribe, 1, [("a/#", 2)]), refused(mp.puback, 0),
]
ob = outbox.Outbox(4)
for i in range(6):
    ob.push(i, 2)
res["outbox"] = [ob.peek(i) for i in range(len(ob))] + [ob.dropped]
enc = reading.Encoder("sim-w1-01", True)
ok = {"hr": 72.4, "spo2": 97.6, "temp": 36.94, "pi": 3.1234, "sqi": 0.951, "probe": "ok"}
res["reading"] = enc.reading(4294967295, 1700000000123, 1, ok, 87, -61).decode()
res["reading_edges"] = enc.reading(0, 5, 0, {"hr": 300.6, "spo2": float("inf"), "temp": 45.06, "pi": 30.5,
                                             "sqi": float("nan"), "probe": "ok"}, float("nan"), 1000).decode()
res["reading_off"] = enc.reading(1, 5, 0, dict(ok, probe="off"), None, None).decode()
res["status"] = json.loads(reading.status("sim-w1-01", "0.1.0", "host", 3, 1, 0, None, -50))
res["status_refused"] = json.loads(reading.status("sim-w1-01", "0.1.0", "host", 3, 1, 0, None, -50, 2, "not authorized"))
res["will"] = reading.will("sim-w1-01").decode()
res["valid"] = [reading.valid_id(s) for s in ("abc", "-ab", "a" * 33, "sim-w1-01", "Ab1")]
pat = simvitals.Patient(42, "desaturation")
res["vitals"] = [pat.sample(t) for t in (0, 45.5, 130, 300, 86400)]
res["baseline"] = pat.baseline
res["events"] = [list(e) for e in simvitals.Patient(1, {"name": "power_off", "start_s": 5}).events]
try:
    simvitals.phases([{"at_s": 1, "hr": 400}])
    res["bad_phase"] = None
except ValueError as e:
    res["bad_phase"] = str(e)
# one tick read: two reads may be milliseconds apart on a loaded host (CI saw it)
t0 = clock.ticks_ms()
res["ticks"] = [clock.ticks_diff(clock.ticks_add(t0, 250), t0), clock.ticks_diff(t0, clock.ticks_add(t0, 250)),
                clock.ticks_diff(clock.ticks_add(t0, -10), clock.ticks_add(t0, 5))]
wrap = clock.ticks_add(0, -5)  # on a board: 5 ms before the counter wraps to 0
res["ticks"].append(clock.ticks_diff(clock.ticks_add(wrap, 10), wrap))
res["tq"] = clock.now()[1]
print("RESULT " + json.dumps(res))
