"""DS18B20 1-Wire thermometer, non-blocking.

Bus interface: MicroPython's ``onewire.OneWire`` (not ``ds18x20.DS18X20``, whose
``convert_temp`` leaves the timing to the caller and whose ``read_temp`` returns the
85.0 °C power-on value as a temperature). Methods used: ``reset()`` -> presence (bool),
``writebyte(b)``, ``write(buf)``, ``readinto(buf)``; ``scan()`` finds the ROM codes.
``wardsim.fakebus.FakeOneWire`` is the host stand-in.

A conversion takes up to 750 ms at 12 bits (94/188/375 ms at 9/10/11). The app's loop must
not stall that long, so ``start(now_ms)`` issues CONVERT T and returns; the caller polls
``ready(now_ms)`` and then calls ``read()``. The driver times the conversion rather than
polling the bus for completion, because a parasite-powered part cannot answer while it
converts.

``read()`` returns °C, or None for the 85.0 °C power-on value (the part was reset, e.g. by
a brown-out, after ``start``: not a temperature). A scratchpad with a bad CRC8, or one that
cannot be a DS18B20's (the configuration byte's fixed bits), is read again up to
``retries`` times and then raised as DriverError: never a number.

Usage (who calls it: a board profile's sensor task)::

    ow = onewire.OneWire(machine.Pin(4))
    t = DS18B20(ow)            # rom=None: the only device on the bus (SKIP ROM)
    t.init()                   # 12 bits
    t.start(ticks_ms())
    ...                        # later, in the same task
    if t.ready(ticks_ms()):
        c = t.read()           # °C, or None (power-on value)
"""

from ..clock import ticks_diff, ticks_ms
from . import DriverError

SKIP_ROM = 0xCC
MATCH_ROM = 0x55
CONVERT_T = 0x44
READ_SCRATCHPAD = 0xBE
WRITE_SCRATCHPAD = 0x4E
CONV_MS = {9: 94, 10: 188, 11: 375, 12: 750}  # max conversion time by resolution (bits)
POWER_ON_RAW = 0x0550  # 85.0 °C


def crc8(data, n=None):
    """Dallas/Maxim 1-Wire CRC8 of ``data[:n]``; over data followed by its CRC it is 0."""
    crc = 0
    if n is None:
        n = len(data)
    for i in range(n):
        byte = data[i]
        for _ in range(8):
            mix = (crc ^ byte) & 0x01
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


class DS18B20:
    """One DS18B20 on ``ow``. ``rom``: its 8-byte ROM code, or None when it is the only
    device on the bus. Counters: ``retries_total`` (bus errors and bad scratchpads read
    again), ``errors`` (raised DriverErrors), ``invalid`` (85.0 °C power-on values)."""

    def __init__(self, ow, rom=None, resolution=12, retries=2):
        if resolution not in CONV_MS:
            raise ValueError("resolution: need 9, 10, 11 or 12 bits, got %r" % (resolution,))
        if rom is not None and len(rom) != 8:
            raise ValueError("rom: need 8 bytes, got %r" % (rom,))
        self.ow = ow
        self.rom = rom
        self.resolution = resolution
        self.retries = retries
        self.retries_total = 0
        self.errors = 0
        self.invalid = 0
        self._started = None  # ticks_ms of the pending conversion
        self._buf = bytearray(9)
        self._cfg = bytearray(4)

    @property
    def conv_ms(self):
        return CONV_MS[self.resolution]

    def _select(self):
        # Reset, then address the part: SKIP ROM when it is alone on the bus, else MATCH
        # ROM. Not ``select_rom``, which resets again and ignores a missing presence pulse.
        if not self.ow.reset():
            raise OSError("no presence pulse")
        if self.rom is None:
            self.ow.writebyte(SKIP_ROM)
        else:
            self.ow.writebyte(MATCH_ROM)
            self.ow.write(self.rom)

    def _retry(self, what, fn):
        attempt = 0
        while True:
            try:
                return fn()
            except (OSError, DriverError) as e:
                if attempt >= self.retries:
                    self.errors += 1
                    if isinstance(e, DriverError):
                        raise
                    raise DriverError("ds18b20: %s failed after %d attempts: %r" % (what, attempt + 1, e))
                attempt += 1
                self.retries_total += 1

    def init(self):
        """Set the resolution (WRITE SCRATCHPAD: TH, TL, configuration)."""
        cfg = self._cfg
        cfg[0] = WRITE_SCRATCHPAD
        cfg[1], cfg[2] = 0x4B, 0x46  # TH/TL alarm bytes: the power-on values, unused
        cfg[3] = ((self.resolution - 9) << 5) | 0x1F

        def write():
            self._select()
            self.ow.write(cfg)

        self._retry("write scratchpad", write)

    def start(self, now_ms=None):
        """Issue CONVERT T and return at once; ``now_ms`` is ``ticks_ms()`` (default: now)."""

        def convert():
            self._select()
            self.ow.writebyte(CONVERT_T)

        self._retry("convert", convert)
        self._started = ticks_ms() if now_ms is None else now_ms

    def ready(self, now_ms=None):
        """True when a conversion was started at least ``conv_ms`` before ``now_ms``."""
        if self._started is None:
            return False
        now = ticks_ms() if now_ms is None else now_ms
        return ticks_diff(now, self._started) >= self.conv_ms

    def read(self, now_ms=None):
        """The finished conversion in °C (1/16 °C steps), or None for the 85.0 °C power-on
        value. Each conversion is read once: RuntimeError when none was started or it is
        not finished yet (the scratchpad would still show the previous result). After a
        DriverError the same conversion may be read again, or a new one started."""
        if self._started is None:
            raise RuntimeError("ds18b20: read() without start()")
        if not self.ready(now_ms):
            raise RuntimeError("ds18b20: read() before the %d ms conversion finished" % self.conv_ms)
        raw = self._retry("read scratchpad", self._read_scratchpad)
        self._started = None
        if raw == POWER_ON_RAW:
            self.invalid += 1
            return None
        if raw & 0x8000:
            raw -= 0x10000
        return raw / 16

    def _read_scratchpad(self):
        buf = self._buf
        self._select()
        self.ow.writebyte(READ_SCRATCHPAD)
        self.ow.readinto(buf)
        if crc8(buf, 8) != buf[8]:
            raise DriverError("ds18b20: scratchpad CRC 0x%02x, computed 0x%02x" % (buf[8], crc8(buf, 8)))
        # Byte 4 (configuration) has bits 0..4 set and bit 7 clear on every DS18B20: an
        # all-zero scratchpad (a bus held low) passes the CRC but not this.
        if buf[4] & 0x9F != 0x1F:
            raise DriverError("ds18b20: scratchpad configuration byte 0x%02x is not a DS18B20's" % buf[4])
        raw = buf[0] | (buf[1] << 8)
        # Undefined low bits below 12-bit resolution.
        return raw & ~((1 << (12 - self.resolution)) - 1) & 0xFFFF
