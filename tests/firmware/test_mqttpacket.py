"""MQTT 3.1.1 packet codec: known byte vectors (derived by hand from the OASIS spec) and
round trips. The client's side is the board's ``bedside.mqttpacket`` (``mp``); the broker's
side, test code, is ``brokerpackets`` (``bp``)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedside import mqttpacket as mp

from . import brokerpackets as bp

# Remaining-length encoding, the edge values of spec table 2.4.
VARINTS = [
    (0, "00"),
    (127, "7f"),
    (128, "8001"),
    (16383, "ff7f"),
    (16384, "808001"),
    (2097151, "ffff7f"),
    (2097152, "80808001"),
    (268435455, "ffffff7f"),
]


@pytest.mark.parametrize("value,hexbytes", VARINTS)
def test_remaining_length_known_vectors(value, hexbytes):
    assert mp.varint(value) == bytes.fromhex(hexbytes)
    assert mp.decode_varint(bytes.fromhex(hexbytes)) == (value, len(hexbytes) // 2)


@pytest.mark.parametrize("value", [-1, 268435456])
def test_remaining_length_out_of_range(value):
    with pytest.raises(ValueError):
        mp.varint(value)


def test_remaining_length_incomplete_and_overlong():
    assert mp.decode_varint(b"\x80") is None
    assert mp.decode_varint(b"") is None
    with pytest.raises(mp.MalformedPacket):
        mp.decode_varint(b"\xff\xff\xff\xff\x01")


# (packet built by the encoder, expected bytes with the layout spelled out)
PACKETS = [
    (
        "CONNECT with will (QoS 1, retained), user, password, clean session, keepalive 30",
        lambda: mp.connect("dev1", 30, True, "u", "p", ("t/s", b"off", 1, True)),
        "10 20"  # CONNECT, remaining length 32
        " 0004 4d515454 04"  # protocol name "MQTT", level 4
        " ee"  # flags: user 80 | password 40 | will retain 20 | will QoS1 08 | will 04 | clean 02
        " 001e"  # keepalive 30 s
        " 0004 64657631"  # client id "dev1"
        " 0003 742f73"  # will topic "t/s"
        " 0003 6f6666"  # will message "off"
        " 0001 75"  # user "u"
        " 0001 70",  # password "p"
    ),
    ("CONNECT, bare, persistent session", lambda: mp.connect("c", 0, False), "10 0d 0004 4d515454 04 00 0000 0001 63"),
    ("CONNACK accepted", lambda: bp.connack(False, 0), "20 02 00 00"),
    ("CONNACK session present, not authorized", lambda: bp.connack(True, 5), "20 02 01 05"),
    ("PUBLISH QoS 0", lambda: mp.publish("a/b", b"hi"), "30 07 0003 612f62 6869"),
    ("PUBLISH QoS 1 pid 10", lambda: mp.publish("a/b", b"hi", 1, False, False, 10), "32 09 0003 612f62 000a 6869"),
    ("PUBLISH QoS 1 retained", lambda: mp.publish("a/b", b"hi", 1, True, False, 10), "33 09 0003 612f62 000a 6869"),
    ("PUBLISH QoS 1 DUP", lambda: mp.publish("a/b", b"hi", 1, False, True, 10), "3a 09 0003 612f62 000a 6869"),
    ("set_dup", lambda: mp.set_dup(mp.publish("a/b", b"hi", 1, True, False, 10)), "3b 09 0003 612f62 000a 6869"),
    ("PUBACK pid 10", lambda: mp.puback(10), "40 02 000a"),
    ("SUBSCRIBE pid 1 a/# QoS 1", lambda: mp.subscribe(1, [("a/#", 1)]), "82 08 0001 0003 612f23 01"),
    ("SUBACK pid 1 [1, failure]", lambda: bp.suback(1, [1, 0x80]), "90 04 0001 01 80"),
    ("PINGREQ", lambda: mp.PINGREQ_PKT, "c0 00"),
    ("PINGRESP", lambda: bp.PINGRESP_PKT, "d0 00"),
    ("DISCONNECT", lambda: mp.DISCONNECT_PKT, "e0 00"),
]


@pytest.mark.parametrize("what,build,hexbytes", PACKETS, ids=[p[0] for p in PACKETS])
def test_packets_known_vectors(what, build, hexbytes):
    assert build() == bytes.fromhex(hexbytes.replace(" ", ""))


def _one(packet):
    r = mp.split(packet)
    assert r is not None and r[3] == len(packet)
    ptype, flags, start, end = r
    return ptype, flags, packet[start:end]


def test_connect_round_trip():
    pkt = mp.connect("sim-w1-01", 30, True, "sim-w1-01", "s3cret:x", ("wardwatch/v1/w1/sim-w1-01/status", b'{"state":"offline"}', 1, True))
    ptype, flags, body = _one(pkt)
    assert (ptype, flags) == (bp.CONNECT, 0)
    assert bp.parse_connect(body) == {
        "client_id": "sim-w1-01", "keepalive": 30, "clean": True, "user": "sim-w1-01", "password": "s3cret:x",
        "will": ("wardwatch/v1/w1/sim-w1-01/status", b'{"state":"offline"}', 1, True),
    }


def test_password_needs_user():
    with pytest.raises(ValueError):
        mp.connect("c", 30, True, None, "pw")


def test_connack_subscribe_suback_round_trips():
    assert mp.parse_connack(_one(bp.connack(True, 4))[2]) == (True, 4)
    ptype, flags, body = _one(mp.subscribe(7, [("a/+", 1), ("b/#", 0)]))
    assert (ptype, flags) == (bp.SUBSCRIBE, 2)
    assert bp.parse_subscribe(body) == (7, [("a/+", 1), ("b/#", 0)])
    assert mp.parse_suback(_one(bp.suback(7, [1, 0x80]))[2]) == (7, [1, 0x80])
    assert mp.parse_pid(_one(mp.puback(65535))[2]) == 65535


# Valid topic names: no surrogates, controls (Cc) or non-characters (Cn), nor wildcards.
topics = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn"), blacklist_characters="+#"), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(
    topic=topics,
    payload=st.binary(max_size=20000),
    qos=st.sampled_from([0, 1]),
    retain=st.booleans(),
    dup=st.booleans(),
    pid=st.integers(1, 65535),
)
def test_publish_round_trip(topic, payload, qos, retain, dup, pid):
    pkt = mp.publish(topic, payload, qos, retain, dup, pid)
    ptype, flags, body = _one(pkt)
    assert ptype == mp.PUBLISH
    got = mp.parse_publish(flags, body)
    assert got == (topic, payload, qos, retain, dup, pid if qos else 0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8), st.integers(1, 50))
def test_split_finds_packets_in_a_stream_cut_anywhere(payloads, chunk):
    """The reader feeds arbitrary TCP chunks to split(); packets come out whole and in order."""
    stream = b"".join(mp.publish("t", p, 1, False, False, i + 1) for i, p in enumerate(payloads)) + bp.PINGRESP_PKT
    buf, out = b"", []
    for i in range(0, len(stream), chunk):
        buf += stream[i : i + chunk]
        pos = 0
        while (r := mp.split(buf, pos)) is not None:
            out.append((r[0], r[1], buf[r[2] : r[3]]))
            pos = r[3]
        buf = buf[pos:]
    assert buf == b""
    assert [mp.parse_publish(f, b)[1] for t, f, b in out[:-1]] == payloads
    assert out[-1][0] == bp.PINGRESP


def test_malformed_bodies():
    with pytest.raises(mp.MalformedPacket):
        mp.parse_publish(0x06, b"\x00\x01a")  # QoS 3
    with pytest.raises(mp.MalformedPacket):
        mp.parse_publish(0x00, b"\x00\x09ab")  # topic overruns
    with pytest.raises(mp.MalformedPacket):
        mp.parse_connack(b"\x00")
    with pytest.raises(mp.MalformedPacket):
        bp.parse_connect(b"\x00\x04MQTT\x03\x02\x00\x00")  # MQTT 3.1.0 level


# Issue 9 items 10-11: what the encoders refuse, so that it never reaches a broker.
BAD_TOPIC_NAMES = ["", "a/+/b", "+", "a/#", "#", "a\x00b", b"a\xffb", b"\xed\xa0\x80", b"\xc0\x80", "a\x01b",
                   "a\x7fb", "a\u0085b", "a\ufffeb", "a\ufdd0b", "\ud800", "a" * 65536]


@pytest.mark.parametrize("topic", BAD_TOPIC_NAMES, ids=[repr(t)[:20] for t in BAD_TOPIC_NAMES])
def test_bad_topic_names_are_refused(topic):
    with pytest.raises(ValueError):
        mp.topic_name(topic)
    with pytest.raises(ValueError):
        mp.publish(topic, b"x", 1, False, False, 1)
    with pytest.raises(ValueError):
        mp.connect("c", 30, True, None, None, (topic, b"off", 1, True))


def test_good_topic_names_and_filters():
    for t in ["a", "/", "a//b", "wardwatch/v1/w1/bed-01/vitals", "$SYS/x", "é/€/😀", "a b", "a" * 65535]:
        assert mp.topic_name(t) == t.encode()
    for f in ["#", "+", "a/#", "+/+/b", "a/+", "/+/#"]:
        assert mp.topic_filter(f) == f.encode()
    for f in ["", "a#", "a/#/b", "a+", "a/+b", "#/a", "a\x00"]:
        with pytest.raises(ValueError):
            mp.topic_filter(f)


@pytest.mark.parametrize("what,build", [
    ("empty client id with a persistent session (MQTT-3.1.3-7)", lambda: mp.connect("", 30, False)),
    ("will QoS 3", lambda: mp.connect("c", 30, True, None, None, ("t", b"off", 3, True))),
    ("will QoS -1", lambda: mp.connect("c", 30, True, None, None, ("t", b"off", -1, True))),
    ("will QoS True", lambda: mp.connect("c", 30, True, None, None, ("t", b"off", True, True))),
    ("keepalive over 65535 s", lambda: mp.connect("c", 65536)),
    ("PUBLISH QoS 1 packet id 0", lambda: mp.publish("a", b"x", 1, False, False, 0)),
    ("PUBLISH QoS 1 packet id 65536", lambda: mp.publish("a", b"x", 1, False, False, 65536)),
    ("PUBLISH QoS 2 (not implemented)", lambda: mp.publish("a", b"x", 2, False, False, 1)),
    ("PUBLISH QoS 3", lambda: mp.publish("a", b"x", 3)),
    ("PUBACK packet id 0", lambda: mp.puback(0)),
    ("SUBSCRIBE QoS 2 (not implemented)", lambda: mp.subscribe(1, [("a/#", 2)])),
    ("SUBSCRIBE packet id 0", lambda: mp.subscribe(0, [("a/#", 1)])),
    ("SUBSCRIBE without a topic", lambda: mp.subscribe(1, [])),
], ids=lambda v: v if isinstance(v, str) else "")
def test_encoders_refuse_what_the_spec_or_the_client_does_not_allow(what, build):
    with pytest.raises(ValueError):
        build()


def test_allowed_edges_still_encode():
    # An empty client id is fine with a clean session (the broker assigns one).
    assert mp.connect("", 30, True) == bytes.fromhex("100c00044d5154540402001e0000")
    # A will at QoS 2 is the broker's to deliver; the client takes no part in its flow.
    assert bp.parse_connect(mp.connect("c", 30, True, None, None, ("t", b"off", 2, False))[2:])["will"] == ("t", b"off", 2, False)
    assert mp.publish("a", b"x", 0, False, False, 0) == bytes.fromhex("3004 0001 61 78".replace(" ", ""))
