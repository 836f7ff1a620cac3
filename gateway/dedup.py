"""Duplicate detection by (device, seq, ts), pure and bounded.

QoS 1 is at-least-once: a device replays a reading whose PUBACK it missed, and the broker
redelivers what the gateway had not acknowledged before a crash. Such a copy has the same
``seq`` *and* ``ts``. A device that rebooted without keeping ``seq`` reuses numbers with new
timestamps; those are new readings and are let through (counted as ``seq_resets``).

What is remembered, and what is forgotten (memory stays bounded):

- per device, the ``(seq, ts)`` of its newest ``window`` sequence numbers, in a ring of two
  integer arrays indexed by ``seq mod size`` (16 bytes a reading; the ring starts small and
  grows to ``window`` only as a device's readings need it);
- at most ``max_devices`` devices: past that, the device heard from least recently is
  forgotten whole (``forgotten_devices``).

A late replay of a forgotten reading (more than ``window`` behind its device's newest, or
of a forgotten device) is let through and stored again (``late``). With a synced clock
(``tq`` = 1) that is harmless: the point's identity in InfluxDB is (series, time), and the
copy carries the same time, so it lands on itself. With ``tq`` = 0 it is a second point, and
the alarm engine sees the old reading once more. The defaults (1,024 readings, 4,096
devices) cover a device's outbox (300 readings by default) and the broker's in-flight
window many times over; at most 64 MiB.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict

_WRAP = 1 << 32  # seq is 0..2^32-1 and wraps
_FIRST_SIZE = 16


class _Ring:
    __slots__ = ("seqs", "tss", "top_seq", "top_ts")

    def __init__(self, size: int):
        self.seqs = array("q", [-1]) * size  # -1: empty slot
        self.tss = array("q", bytes(8 * size))
        self.top_seq = -1  # the newest seq seen, and its ts
        self.top_ts = 0


def _newer(a: int, b: int) -> bool:
    """Whether seq ``a`` comes after seq ``b``, modulo the wrap."""
    return 0 < (a - b) % _WRAP < _WRAP // 2


class Dedup:
    """See the module docstring. Who calls it: ``ingest.Processor``, once per reading."""

    def __init__(self, window: int = 1024, max_devices: int = 4096):
        self.window = window
        self.max_devices = max_devices
        self._rings: OrderedDict[str, _Ring] = OrderedDict()
        self.seq_resets = 0
        self.late = 0
        self.forgotten_devices = 0
        # Set by each is_duplicate() that returns False: the reading is newer than any of its
        # device's, yet its ts is not (the clock went back). Its ts may equal an older
        # reading's, so it must not be stored at its ts (docs/protocol.md).
        self.clock_went_back = False

    def __len__(self) -> int:
        """Devices remembered now."""
        return len(self._rings)

    def is_duplicate(self, device: str, seq: int, ts: int) -> bool:
        """True if this exact reading was seen (and is still remembered); otherwise remembers it."""
        ring = self._rings.get(device)
        if ring is None:
            if len(self._rings) >= self.max_devices:
                self._rings.popitem(last=False)
                self.forgotten_devices += 1
            ring = self._rings[device] = _Ring(min(_FIRST_SIZE, self.window))
        else:
            self._rings.move_to_end(device)
        while True:
            size = len(ring.seqs)
            i = seq % size
            old = ring.seqs[i]
            if old == seq:
                if ring.tss[i] == ts:
                    return True
                self.seq_resets += 1
                break
            if old < 0:
                break
            if size < self.window and min((seq - old) % _WRAP, (old - seq) % _WRAP) < self.window:
                ring = self._grow(device, ring)  # both within the window: make room for both
                continue
            if _newer(old, seq) and ts <= ring.tss[i]:
                # Older than anything this slot can hold: a late replay, let through unremembered.
                self.late += 1
                self.clock_went_back = False
                return False
            break  # forget the older reading in this slot (or one from before a reboot)
        ring.seqs[i] = seq
        ring.tss[i] = ts
        self.clock_went_back = False
        if ring.top_seq < 0 or _newer(seq, ring.top_seq):
            self.clock_went_back = ring.top_seq >= 0 and ts <= ring.top_ts
            ring.top_seq, ring.top_ts = seq, max(ts, ring.top_ts)
        return False

    def _grow(self, device: str, ring: _Ring) -> _Ring:
        bigger = _Ring(min(len(ring.seqs) * 2, self.window))
        bigger.top_seq, bigger.top_ts = ring.top_seq, ring.top_ts
        size = len(bigger.seqs)
        for seq, ts in zip(ring.seqs, ring.tss):
            if seq < 0:
                continue
            j = seq % size
            if bigger.seqs[j] < 0 or _newer(seq, bigger.seqs[j]):
                bigger.seqs[j] = seq
                bigger.tss[j] = ts
        self._rings[device] = bigger
        return bigger
