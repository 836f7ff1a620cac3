"""Time for the bedside app: the one place where MicroPython and CPython differ.

- ``ticks_ms()``, ``ticks_diff(a, b)``, ``ticks_add(t, ms)``: a monotonic millisecond
  counter. On MicroPython it wraps (always compare with ``ticks_diff``); on CPython it does
  not, but callers must not rely on that.
- ``sleep_ms(ms)``: an awaitable asyncio sleep.
- ``now()`` -> ``(ts, tq)``: the reading timestamp. ``tq`` = 1 when ``ts`` is epoch ms UTC
  from a synced clock; ``tq`` = 0 when it is ms since boot (the gateway then stamps on
  receipt). On the host the clock counts as synced (host time, kept by the OS). A board
  starts unsynced and calls ``set_epoch_ms()`` after NTP.
"""

# pyright: reportAssignmentType=false
# (This module defines CPython fallbacks under MicroPython's names; the board stubs type the
# MicroPython originals, so the redefinitions are expected to differ.)

try:
    from time import ticks_ms, ticks_diff, ticks_add  # MicroPython
    from asyncio import sleep_ms

    _host_epoch_ms = None
except ImportError:  # CPython
    import asyncio as _asyncio
    import time as _time

    def ticks_ms():
        return _time.monotonic_ns() // 1000000  # pyright: ignore[reportAttributeAccessIssue]

    def ticks_diff(a, b):
        return a - b

    def ticks_add(t, delta):
        return t + delta

    def sleep_ms(ms):
        return _asyncio.sleep(ms / 1000)

    def _host_epoch_ms():
        return _time.time_ns() // 1000000


_last = ticks_ms()
_up = 0  # ms since boot; accumulated so that the wrapping tick counter never shows through
_sync_epoch = None  # epoch ms at uptime _sync_up, once set_epoch_ms() was called
_sync_up = 0


def uptime_ms():
    """Milliseconds since this module was imported (boot). Never wraps, provided it is
    called at least every few days (every reading calls it)."""
    global _last, _up
    t = ticks_ms()
    _up += ticks_diff(t, _last)
    _last = t
    return _up


def set_epoch_ms(epoch_ms):
    """Mark the clock synced: ``epoch_ms`` is the current UTC time in ms (from NTP).
    Called by a board profile; on the host it overrides host time (tests)."""
    global _sync_epoch, _sync_up
    _sync_up = uptime_ms()
    _sync_epoch = int(epoch_ms)


def synced():
    """True when ``now()`` returns epoch time (tq=1)."""
    return _sync_epoch is not None or _host_epoch_ms is not None


def now():
    """The timestamp for a reading taken now: ``(ts_ms, tq)``; see the module docstring."""
    if _sync_epoch is not None:
        return _sync_epoch + uptime_ms() - _sync_up, 1
    if _host_epoch_ms is not None:
        return _host_epoch_ms(), 1
    return uptime_ms(), 0
