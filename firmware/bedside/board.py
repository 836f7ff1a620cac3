"""Board profiles: what the app needs from the hardware, behind one small interface.

A profile has ``name`` (the status ``board``: "host" | "esp32" | "rp2"), ``batt()`` (% or
None on mains), ``rssi()`` (dBm or None) and ``link_up`` (None when there is no network
interface to watch, else a function returning whether Wi-Fi is associated).
``profile(cfg)`` picks one from a board's config dict. Who calls it: ``bedside.app`` and
``main.py``.

``PINS`` holds each board's default wiring (I2C bus, status LED, OneWire).
"""

from .clock import ticks_diff, ticks_ms

# Default wiring per board; a board's config may override any key under "pins".
# ESP32 DevKit: I2C0 on GPIO21/22, on-board LED GPIO2, DS18B20 data on GPIO4.
# Pico W: I2C0 on GP4/GP5, the LED is on the Wi-Fi chip ("LED"), DS18B20 on GP22.
PINS = {
    "esp32": {"i2c_id": 0, "sda": 21, "scl": 22, "i2c_hz": 400000, "led": 2, "onewire": 4},
    "rp2": {"i2c_id": 0, "sda": 4, "scl": 5, "i2c_hz": 400000, "led": "LED", "onewire": 22},
}
# RP2040's watchdog cannot wait longer than ~8.3 s; ESP32's can, but one value serves both.
WDT_TIMEOUT_MS = 8000


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

    def __init__(self, name, pins=None):
        import machine
        import network

        self.name = name
        self.pins = dict(PINS[name])
        self.pins.update(pins or {})
        self._machine = machine
        self._led = None
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

    def i2c(self):
        """The sensor bus (MAX30102, MAX30205) on the profile's pins."""
        m, p = self._machine, self.pins
        return m.I2C(p["i2c_id"], sda=m.Pin(p["sda"]), scl=m.Pin(p["scl"]), freq=p["i2c_hz"])

    def led(self, on):
        """The status LED: on = connected to the broker."""
        if self._led is None:
            self._led = self._machine.Pin(self.pins["led"], self._machine.Pin.OUT)
        self._led.value(1 if on else 0)

    def watchdog(self, timeout_ms=WDT_TIMEOUT_MS):
        self._wdt = self._machine.WDT(timeout=timeout_ms)

    def feed(self):
        if self._wdt is not None:
            self._wdt.feed()


def profile(cfg):
    """The board profile for a config dict (key ``board``, default "host")."""
    name = cfg.get("board", "host")
    if name == "host":
        return HostBoard()
    if name in PINS:
        return WifiBoard(name, cfg.get("pins"))
    raise ValueError("unknown board %r (host, esp32, rp2)" % (name,))
