"""Duplicate detection by (device, seq), pure and bounded.

QoS 1 is at-least-once: a device replays a reading whose PUBACK it missed, and the broker
redelivers what the gateway had not acknowledged before a crash. Such a copy has the same
``seq`` *and* ``ts``. A device that rebooted without keeping ``seq`` reuses numbers with new
timestamps; those are new readings and are let through (counted as ``seq_reset``).
"""

from __future__ import annotations

from collections import OrderedDict


class Dedup:
    """Remembers the last ``window`` (seq -> ts) pairs per device."""

    def __init__(self, window: int = 4096):
        self.window = window
        self._seen: dict[str, OrderedDict[int, int]] = {}
        self.seq_resets = 0

    def is_duplicate(self, device: str, seq: int, ts: int) -> bool:
        """True if this exact reading was seen before; otherwise remembers it."""
        seen = self._seen.get(device)
        if seen is None:
            seen = self._seen[device] = OrderedDict()
        previous = seen.get(seq)
        if previous == ts:
            return True
        if previous is not None:
            self.seq_resets += 1
            del seen[seq]
        seen[seq] = ts
        if len(seen) > self.window:
            seen.popitem(last=False)
        return False
