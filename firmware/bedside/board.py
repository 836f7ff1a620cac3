"""Board profiles: what the app needs from the hardware, behind one small interface.

A profile has ``name`` (the status ``board``: "host" | "esp32" | "rp2"), ``batt()`` (% or
None on mains), ``rssi()`` (dBm or None) and ``link_up`` (None when there is no network
interface to watch, else a function returning whether Wi-Fi is associated).
``profile(cfg)`` picks one from a board's config dict. Who calls it: ``bedside.app`` and
``main.py``.

Real sensor drivers (MAX30102, temperature) and board pin maps arrive with the board
profiles in a later issue; until then every board uses ``bedside.simvitals``.
"""

from .clock import ticks_diff, ticks_ms


class HostBoard:
    """The host simulator's board: no radio, no battery, unless given fixed values."""

    link_up = None

    def __init__(self, name="host", rssi=None, batt=None):
        self.name = name
        self._rssi = rssi
        self._batt = batt

    def rssi(self):
        return self._rssi

    def batt(self):
        return self._batt


class WifiBoard:
    """An ESP32 or Pico W: Wi-Fi through ``network.WLAN``, watchdog through ``machine``.
    On CPython this works with the stand-ins from ``wardsim`` (``wardsim.install_stubs``)."""

    def __init__(self, name):
        import machine
        import network

        self.name = name
        self._machine = machine
        self._wlan = network.WLAN(network.STA_IF)
        self._rssi = None
        self._rssi_at = None
        self._wdt = None

    def connect_wifi(self, ssid, key):
        """Start associating (returns at once; the app watches ``link_up``)."""
        self._wlan.active(True)
        if not self._wlan.isconnected():
            self._wlan.connect(ssid, key)

    def link_up(self):
        return self._wlan.isconnected()

    def rssi(self):
        # Asking the radio costs a driver call; once every 5 s is plenty for a trend.
        now = ticks_ms()
        if self._rssi_at is None or ticks_diff(now, self._rssi_at) > 5000:
            self._rssi_at = now
            try:
                self._rssi = int(self._wlan.status("rssi"))
            except Exception:
                self._rssi = None
        return self._rssi

    def batt(self):
        return None  # mains powered until a battery gauge is wired (board profile issue)

    def sync_time(self, clock):
        """Set ``clock`` from NTP (``ntptime``); True on success, raises otherwise."""
        import ntptime
        import time

        ntptime.settime()
        # Ports differ in their epoch (1970 or 2000): ask gmtime where 0 lies.
        offset = 946684800 if time.gmtime(0)[0] == 2000 else 0
        clock.set_epoch_ms((time.time() + offset) * 1000)
        return True

    def unique_id(self):
        return "".join("%02x" % b for b in self._machine.unique_id())

    def watchdog(self, timeout_ms):
        self._wdt = self._machine.WDT(timeout=timeout_ms)

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()


def profile(cfg):
    """The board profile for a config dict (key ``board``, default "host")."""
    name = cfg.get("board", "host")
    if name == "host":
        return HostBoard()
    if name in ("esp32", "rp2"):
        return WifiBoard(name)
    raise ValueError("unknown board %r (host, esp32, rp2)" % (name,))
