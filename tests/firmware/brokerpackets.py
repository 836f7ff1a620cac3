"""The broker's side of MQTT 3.1.1, for tests that play the broker: CONNECT and SUBSCRIBE
parsing, CONNACK, SUBACK and PINGRESP. The board flashes only what it runs: its side, the
client's, is ``bedside.mqttpacket``, whose framing and field helpers this module reuses.

MicroPython syntax: tests/firmware/test_micropython.py copies this file into MicroPython's
/lib and runs it there too (tests/firmware/mpy/vectors.py).
"""

from struct import pack, unpack_from

from bedside.mqttpacket import MalformedPacket, _packet, _read_field, parse_pid

# packet types the broker reads (CONNECT, SUBSCRIBE) or sends only (PINGRESP)
CONNECT = 1
SUBSCRIBE = 8
PINGRESP = 13

PINGRESP_PKT = b"\xd0\x00"


def parse_connect(body):
    """Decode a CONNECT body into a dict with keys client_id, keepalive, clean, user,
    password, will (as given to ``bedside.mqttpacket.connect``; strings decoded, payloads
    bytes)."""
    if bytes(body[:6]) != b"\x00\x04MQTT" or body[6] != 4:
        raise MalformedPacket("not MQTT 3.1.1")
    flags = body[7]
    (keepalive,) = unpack_from("!H", body, 8)
    cid, pos = _read_field(body, 10)
    will = user = password = None
    if flags & 0x04:
        topic, pos = _read_field(body, pos)
        msg, pos = _read_field(body, pos)
        will = (topic.decode(), msg, (flags >> 3) & 3, bool(flags & 0x20))
    if flags & 0x80:
        user, pos = _read_field(body, pos)
        user = user.decode()
    if flags & 0x40:
        password, pos = _read_field(body, pos)
        password = password.decode()
    return {
        "client_id": cid.decode(),
        "keepalive": keepalive,
        "clean": bool(flags & 0x02),
        "user": user,
        "password": password,
        "will": will,
    }


def connack(session_present=False, rc=0):
    return bytes((0x20, 2, 1 if session_present else 0, rc))


def parse_subscribe(body):
    """``(pid, [(topic_filter, qos), ...])``."""
    pid = parse_pid(body)
    pos = 2
    topics = []
    while pos < len(body):
        topic, pos = _read_field(body, pos)
        if pos >= len(body):
            raise MalformedPacket("SUBSCRIBE without QoS byte")
        topics.append((topic.decode(), body[pos]))
        pos += 1
    return pid, topics


def suback(pid, codes):
    return _packet(0x90, pack("!H", pid) + bytes(codes))
