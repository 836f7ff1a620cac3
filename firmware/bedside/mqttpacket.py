"""MQTT 3.1.1 packets, the client's side: pure encode and decode, no I/O (OASIS MQTT 3.1.1,
sections 2-3).

Only what a device sends (CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT) is
encoded, and only what it reads (CONNACK, PUBLISH, PUBACK, SUBACK) is decoded; a PINGRESP
just has to be framed. Encoders return ``bytes`` (a whole packet, fixed header included).
``split(buf, pos)`` finds the next whole packet in a byte buffer; the ``parse_*`` functions
take that packet's body (the bytes after the fixed header) and return tuples. Topics and
client ids may be ``str`` or ``bytes``; decoded topics are ``str``, payloads ``bytes``.
Who calls it: ``bedside.mqtt``, ``bench/alarm_latency.py`` (on plain sockets) and the
tests. The broker's side (CONNECT and SUBSCRIBE parsing, CONNACK, SUBACK, PINGRESP) is test
code, ``tests/firmware/brokerpackets.py``: a board flashes only what it runs. Nothing here
allocates more than the packet it builds.

What the encoders refuse (ValueError), so that nothing a broker would disconnect for goes on
the wire: a topic name that is empty, holds ``+``, ``#`` or U+0000, is not well-formed UTF-8
or holds a code point Mosquitto refuses (controls, surrogates, non-characters; MQTT 1.5.3,
4.7.3) or is over 65535 bytes; a topic filter with misplaced wildcards; QoS 2 anywhere the
client would have to run its flow (PUBLISH, SUBSCRIBE: not implemented); a packet id
outside 1..65535; an empty client id with a persistent session (MQTT-3.1.3-7); a will QoS
outside 0..2. A will at QoS 2 is allowed: the broker alone delivers a will, the client takes
no part in its flow.
"""

from struct import pack, unpack_from

# packet types the client reads
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBACK = 9
PINGRESP = 13

MAX_REMAINING = 268435455  # 4 varint bytes

# CONNACK return codes (3.2.2.3)
CONNACK_TEXT = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}

PINGREQ_PKT = b"\xc0\x00"
DISCONNECT_PKT = b"\xe0\x00"


class MalformedPacket(ValueError):
    pass


def _b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def _field(s):
    """A length-prefixed UTF-8 string or binary field."""
    s = _b(s)
    if len(s) > 65535:
        raise ValueError("field longer than 65535 bytes")
    return pack("!H", len(s)) + s


def _utf8_ok(b):
    """True when ``b`` is well-formed UTF-8 without the code points Mosquitto refuses in a
    string (U+0000..U+001F, U+007F..U+009F, surrogates, non-characters). Walks the bytes (ints)
    rather than decoding: MicroPython's decode() lets surrogates and overlong forms through."""
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            if c < 0x20 or c == 0x7F:
                return False
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, cp, low = 1, c & 0x1F, 0x80
        elif 0xE0 <= c <= 0xEF:
            k, cp, low = 2, c & 0x0F, 0x800
        elif 0xF0 <= c <= 0xF4:
            k, cp, low = 3, c & 0x07, 0x10000
        else:
            return False
        if i + k >= n:
            return False
        for j in range(1, k + 1):
            d = b[i + j]
            if d & 0xC0 != 0x80:
                return False
            cp = (cp << 6) | (d & 0x3F)
        if (cp < low or cp > 0x10FFFF or cp <= 0x9F or 0xD800 <= cp <= 0xDFFF
                or 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE):
            return False
        i += k + 1
    return True


def topic_name(topic):
    """``topic`` as bytes, checked as a PUBLISH topic name (see the module doc); ValueError
    naming the problem otherwise."""
    t = _b(topic)
    if not t:
        raise ValueError("empty topic name")
    if b"+" in t or b"#" in t:
        raise ValueError("wildcard in topic name %r" % (topic,))
    if len(t) > 65535:
        raise ValueError("topic name longer than 65535 bytes")
    if not _utf8_ok(t):
        raise ValueError("topic name %r is not valid MQTT UTF-8 (NUL, control or ill-formed)" % (topic,))
    return t


def topic_filter(topic):
    """``topic`` as bytes, checked as a SUBSCRIBE topic filter: as a topic name, except that
    ``+`` may fill a whole level and ``#`` only the last one (MQTT 4.7.1)."""
    t = _b(topic)
    if not t or len(t) > 65535 or not _utf8_ok(t):
        raise ValueError("invalid topic filter %r" % (topic,))
    n = len(t)
    for i in range(n):
        c = t[i]
        if c == 0x2B or c == 0x23:  # + or #
            if (i and t[i - 1] != 0x2F) or (i + 1 < n and t[i + 1] != 0x2F) or (c == 0x23 and i + 1 != n):
                raise ValueError("misplaced wildcard in topic filter %r" % (topic,))
    return t


def _qos(qos, most=1):
    if qos is True or qos is False or qos not in (0, 1, 2)[: most + 1]:
        raise ValueError("QoS %r not supported (0..%d)" % (qos, most))
    return qos


def _pid(pid):
    if not isinstance(pid, int) or not 0 < pid <= 65535:
        raise ValueError("packet id %r outside 1..65535" % (pid,))
    return pid


def varint(n):
    """Encode the remaining length ``n`` (0..268435455) as 1-4 bytes."""
    if n < 0 or n > MAX_REMAINING:
        raise ValueError("remaining length out of range")
    if n < 128:
        return bytes((n,))
    out = bytearray()
    while True:
        d = n & 0x7F
        n >>= 7
        if n:
            out.append(d | 0x80)
        else:
            out.append(d)
            return bytes(out)


def decode_varint(buf, pos=0):
    """Decode a remaining length at ``buf[pos]``: ``(value, next_pos)``, or None when the
    buffer ends first. Raises MalformedPacket for a 5th continuation byte."""
    value = 0
    shift = 0
    for i in range(4):
        if pos + i >= len(buf):
            return None
        d = buf[pos + i]
        value |= (d & 0x7F) << shift
        if not d & 0x80:
            return value, pos + i + 1
        shift += 7
    raise MalformedPacket("remaining length longer than 4 bytes")


def _packet(first, body):
    return bytes((first,)) + varint(len(body)) + body


def split(buf, pos=0):
    """Find the packet starting at ``buf[pos]``.

    Returns ``(ptype, flags, body_start, end)`` where the body is ``buf[body_start:end]``
    and the next packet starts at ``end``; or None when the buffer holds no whole packet yet.
    """
    if pos >= len(buf):
        return None
    r = decode_varint(buf, pos + 1)
    if r is None:
        return None
    n, start = r
    end = start + n
    if end > len(buf):
        return None
    first = buf[pos]
    return first >> 4, first & 0x0F, start, end


# --- CONNECT / CONNACK ---------------------------------------------------------------

def connect(client_id, keepalive=60, clean=True, user=None, password=None, will=None):
    """CONNECT. ``keepalive`` in s (0..65535). ``will`` is None or
    ``(topic, payload, qos, retain)``, qos 0..2. A password needs a user (3.1.2.9); an empty
    ``client_id`` needs ``clean`` (MQTT-3.1.3-7)."""
    if not _b(client_id) and not clean:
        raise ValueError("an empty client id needs a clean session")
    if not 0 <= keepalive <= 65535:
        raise ValueError("keepalive outside 0..65535 s")
    flags = 0x02 if clean else 0
    payload = _field(client_id)
    if will is not None:
        topic, msg, qos, retain = will
        flags |= 0x04 | (_qos(qos, 2) << 3) | (0x20 if retain else 0)
        payload += _field(topic_name(topic)) + _field(msg)
    if user is not None:
        flags |= 0x80
        payload += _field(user)
    if password is not None:
        if user is None:
            raise ValueError("a password needs a user name")
        flags |= 0x40
        payload += _field(password)
    body = b"\x00\x04MQTT\x04" + bytes((flags,)) + pack("!H", keepalive) + payload
    return _packet(0x10, body)


def _read_field(body, pos):
    (n,) = unpack_from("!H", body, pos)
    end = pos + 2 + n
    if end > len(body):
        raise MalformedPacket("field overruns packet")
    return bytes(body[pos + 2 : end]), end


def parse_connack(body):
    """``(session_present, return_code)``; return code 0 is accepted (CONNACK_TEXT)."""
    if len(body) != 2:
        raise MalformedPacket("CONNACK length")
    return bool(body[0] & 1), body[1]


# --- PUBLISH / PUBACK ------------------------------------------------------------------

def publish(topic, payload, qos=0, retain=False, dup=False, pid=0):
    """PUBLISH. ``qos`` 0 or 1; ``pid`` (1..65535) only for QoS 1; ``dup`` marks a resend."""
    first = 0x30 | (_qos(qos) << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    topic = topic_name(topic)
    payload = _b(payload)
    if qos:
        head = pack("!H", len(topic)) + topic + pack("!H", _pid(pid))
    else:
        head = pack("!H", len(topic)) + topic
    return bytes((first,)) + varint(len(head) + len(payload)) + head + payload


def set_dup(packet):
    """The same PUBLISH packet with the DUP flag set (a QoS 1 retransmission)."""
    return bytes((packet[0] | 0x08,)) + packet[1:]


def parse_publish(flags, body):
    """``(topic, payload, qos, retain, dup, pid)`` from a PUBLISH's fixed-header flags and
    body; ``pid`` is 0 for QoS 0."""
    qos = (flags >> 1) & 3
    if qos == 3:
        raise MalformedPacket("QoS 3")
    topic, pos = _read_field(body, 0)
    pid = 0
    if qos:
        (pid,) = unpack_from("!H", body, pos)
        pos += 2
    return topic.decode(), bytes(body[pos:]), qos, bool(flags & 1), bool(flags & 8), pid


def puback(pid):
    return pack("!BBH", 0x40, 2, _pid(pid))


def parse_pid(body):
    """The packet id of a PUBACK (or any packet whose body starts with it)."""
    if len(body) < 2:
        raise MalformedPacket("no packet id")
    return unpack_from("!H", body, 0)[0]


# --- SUBSCRIBE / SUBACK ----------------------------------------------------------------

def subscribe(pid, topics):
    """SUBSCRIBE for ``topics``: a non-empty list of ``(topic_filter, qos)``, qos 0 or 1."""
    if not topics:
        raise ValueError("SUBSCRIBE needs a topic")
    body = pack("!H", _pid(pid))
    for topic, qos in topics:
        body += _field(topic_filter(topic)) + bytes((_qos(qos),))
    return _packet(0x82, body)


def parse_suback(body):
    """``(pid, [return_code, ...])``; 0x80 means the subscription failed."""
    return parse_pid(body), list(body[2:])
