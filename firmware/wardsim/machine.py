"""CPython stand-in for MicroPython's ``machine`` module: just what board code touches.

``wardsim.install_stubs()`` puts it into ``sys.modules["machine"]``. Nothing here talks to
hardware; ``reset()`` raises SystemExit so a host run of ``main.py`` ends visibly.
"""

import hashlib
import socket


def unique_id():
    """6 bytes, stable per host (like an ESP32's MAC-derived id)."""
    return hashlib.sha256(socket.gethostname().encode()).digest()[:6]


def reset():
    raise SystemExit("machine.reset() called")


class WDT:
    """Watchdog: records feeds; never resets the host."""

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class Pin:
    OUT = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self._value = value or 0

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = 1 if v else 0


class I2C:
    """An I2C bus with nothing attached: every transfer fails as on an empty bus.
    Tests attach register-level fakes through ``wardsim.fakebus`` instead."""

    def __init__(self, id=0, sda=None, scl=None, freq=400000):
        self.id = id
        self.freq = freq

    def readfrom_mem(self, addr, reg, n):
        raise OSError(19, "ENODEV")

    def writeto_mem(self, addr, reg, buf):
        raise OSError(19, "ENODEV")
