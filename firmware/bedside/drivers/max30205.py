"""MAX30205 body-temperature sensor over I2C (±0.1 °C over 37..39 °C, per the datasheet).

Registers (datasheet "Register Map"): 0x00 temperature, 16-bit two's complement, MSB first,
1 LSB = 0.00390625 °C (1/256); 0x01 configuration (8 bits); 0x02 THYST and 0x03 TOS
(16 bits each, for the OS alarm pin, unused here). The driver keeps the normal data format
(DATA FORMAT bit 5 = 0): the extended format adds 64 °C to every reading, and one driver
reading both formats is one more way to report a wrong temperature.

Usage (who calls it: a board profile's sensor task, once a second or slower)::

    t = MAX30205(i2c)      # no bus traffic yet
    t.init()               # continuous conversions (~44 ms each)
    c = t.read()           # °C, float

For low power: ``init(shutdown=True)``, then ``one_shot()`` and ``read()`` at least
``CONV_MS`` later. I2C errors are retried (``retries``) and then raised as DriverError
naming the register (``bedside.drivers``).
"""

from . import I2CDriver, I2CRegs

ADDR = 0x48  # A0/A1/A2 to GND; the part answers on 0x48..0x4F and 0x50..0x5E by its pins
TEMP = 0x00
CONFIG = 0x01
THYST = 0x02
TOS = 0x03
NAMES = {TEMP: "TEMP", CONFIG: "CONFIG", THYST: "THYST", TOS: "TOS"}

SHUTDOWN = 0x01
DATA_FORMAT = 0x20  # extended (+64 °C): never set by this driver
ONE_SHOT = 0x80
LSB_C = 0.00390625
CONV_MS = 50  # conversion time, max (44 typ)


def to_celsius(msb, lsb):
    """Temperature register bytes -> °C (normal format)."""
    raw = (msb << 8) | lsb
    if raw & 0x8000:
        raw -= 0x10000
    return raw * LSB_C


class MAX30205(I2CDriver):
    """One MAX30205 on ``i2c`` (a ``machine.I2C``-like object). Counters:
    ``retries_total``, ``errors`` (see ``bedside.drivers.I2CRegs``)."""

    def __init__(self, i2c, addr=ADDR, retries=2):
        self._regs = I2CRegs(i2c, addr, "max30205", NAMES, retries)
        self._buf = bytearray(2)
        self._config = 0

    def init(self, shutdown=False):
        """Normal data format, comparator mode, bus timeout on; converting continuously
        unless ``shutdown``. Reads the configuration back, so a missing part raises here."""
        self._config = SHUTDOWN if shutdown else 0
        self._regs.write_u8(CONFIG, self._config)
        return self.config()

    def config(self):
        return self._regs.read_u8(CONFIG)

    def read(self):
        """The last conversion in °C (-128.0 .. +127.996; the part measures 0..50 °C)."""
        self._regs.read_into(TEMP, self._buf)
        return to_celsius(self._buf[0], self._buf[1])

    def shutdown(self):
        """Stop converting (~3.5 µA); ``read()`` keeps returning the last conversion."""
        self._config |= SHUTDOWN
        self._regs.write_u8(CONFIG, self._config)

    def wakeup(self):
        self._config &= ~SHUTDOWN
        self._regs.write_u8(CONFIG, self._config)

    def one_shot(self):
        """Start one conversion; ``read()`` after ``CONV_MS``. ONE-SHOT only acts in
        shutdown, so a part that converts continuously is shut down first (a write of
        its own: the datasheet does not say that one write may do both)."""
        if not self._config & SHUTDOWN:
            self.shutdown()
        self._regs.write_u8(CONFIG, self._config | ONE_SHOT)
