"""End-to-end delivery: how far each device's readings are durably handled.

A broker's PUBACK to a device is not storage: a broker that crashes before it saved its
state forgets what it acknowledged. So the gateway tells each device, on a retained topic
only it may write and only that device may read (``<prefix>/<ward>/<device>/durable``),
the watermark ``seq``: every reading of the device up to it is durably handled (in
InfluxDB, in the spool, or rejected with a counted reason). The device keeps a reading in
its outbox until a watermark covers it and sends again what stays uncovered
(docs/protocol.md, "End-to-end delivery").

Each watermark also carries ``top``, the newest seq handled: ``top`` past ``seq`` tells the
device that the readings in between are missing here (a broker dropped them), so it sends
them again at once instead of after its resend timeout.

The device says where its outbox starts: ``low`` in each reading, the oldest seq it still
holds. Everything before ``low`` the device no longer has (covered already, or dropped from
a full outbox and counted), so the watermark is at least ``low - 1``; above it, it advances
only over seqs without a gap. Devices that send no ``low`` (older firmware) get no
watermark and keep today's behaviour: their outbox lets go on the broker's PUBACK.

Pure, time passed in. Who calls it: ``ingest.MqttIngest`` with each durable batch
(``handled``) and once a second (``due``); the publishing is ingest's.
"""

from __future__ import annotations

_WRAP = 1 << 32


def _after(a: int, b: int) -> bool:
    """seq ``a`` comes after seq ``b`` (modulo the wrap)."""
    return 0 < (a - b) % _WRAP < _WRAP // 2


class _Device:
    __slots__ = ("ward", "mark", "top", "above", "published", "published_ms")

    def __init__(self, ward: str, mark: int):
        self.ward = ward
        self.mark = mark  # every seq up to here is handled
        self.top = mark  # the newest handled seq: past the mark, there is a gap
        self.above: set[int] = set()  # handled seqs past a gap
        self.published: tuple[int, int] | None = None  # (mark, top) last published
        self.published_ms = -(1 << 62)  # never


class Watermarks:
    """``interval_ms``: at most one watermark per device this often (broker traffic);
    ``max_gap``: handled seqs kept above a gap before the gap is given up (memory)."""

    def __init__(self, interval_ms: int = 1000, max_gap: int = 4096):
        self.interval_ms = interval_ms
        self.max_gap = max_gap
        self._devices: dict[str, _Device] = {}
        self.gaps_given_up = 0

    def __len__(self) -> int:
        return len(self._devices)

    def handled(self, ward: str, device: str, seq: int, low: int) -> None:
        """Reading ``seq`` of ``device`` (which holds nothing before ``low``) is durable."""
        d = self._devices.get(device)
        floor = (low - 1) % _WRAP
        if d is None:
            d = self._devices[device] = _Device(ward, floor)
        d.ward = ward
        if _after(floor, d.mark):
            d.mark = floor
            d.above = {s for s in d.above if _after(s, floor)}
        if _after(seq, d.mark):
            d.above.add(seq)
        if _after(seq, d.top):
            d.top = seq
        nxt = (d.mark + 1) % _WRAP
        while nxt in d.above:
            d.above.discard(nxt)
            d.mark = nxt
            nxt = (nxt + 1) % _WRAP
        if _after(d.mark, d.top):
            d.top = d.mark  # the device's low moved the mark past everything seen
        if len(d.above) > self.max_gap:
            # A gap nothing fills any more (the device's low will move past it too): give it
            # up rather than grow without bound.
            self.gaps_given_up += 1
            d.mark = min(d.above, key=lambda s: (s - d.mark) % _WRAP)
            d.above.discard(d.mark)
            nxt = (d.mark + 1) % _WRAP
            while nxt in d.above:
                d.above.discard(nxt)
                d.mark = nxt
                nxt = (nxt + 1) % _WRAP

    def due(self, now_ms: int) -> list[tuple[str, str, int, int]]:
        """(ward, device, mark, top) for each device whose mark or top moved and whose last
        watermark is at least ``interval_ms`` old; they count as published from now. ``top``
        past ``mark`` tells the device that readings after the mark are missing here."""
        out = []
        for device, d in self._devices.items():
            state = (d.mark, d.top)
            if state != d.published and now_ms - d.published_ms >= self.interval_ms:
                d.published, d.published_ms = state, now_ms
                out.append((d.ward, device, d.mark, d.top))
        return out
