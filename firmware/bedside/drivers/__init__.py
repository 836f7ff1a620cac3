"""Sensor drivers for the bedside boards (MAX30102 pulse oximeter, MAX30205 and DS18B20
thermometers), flashed with the app to ``/lib/bedside/drivers/``.

Shared here: ``DriverError`` (what every driver raises for a sensor that does not answer
or answers nonsense) and ``I2CRegs``, register access with a bounded retry.

I2C policy: a transfer that raises OSError (EIO, ETIMEDOUT, ENODEV: a loose cable, a
glitch while an LED pulses) is tried again up to ``retries`` more times, at once, because
a single glitch is common and one retry usually cures it; each retry is counted in
``retries_total``. When every attempt fails, the driver raises ``DriverError`` naming the
device, the register and the last OSError, and counts it in ``errors``. Nothing is
swallowed: the caller decides (publish ``probe: "off"`` and null values, never a guess).

Who calls it: the driver modules in this package. They run on MicroPython and, with the
register-level fakes of ``wardsim.fakebus``, on CPython in the tests and the simulator.
"""


class DriverError(Exception):
    """A sensor did not answer, or answered something that cannot be a measurement
    (wrong part id, bad CRC, a reset that never finished). The message names the device
    and, for I2C, the register."""


class I2CRegs:
    """Register access to one I2C device with bounded retries.

    ``i2c``: a ``machine.I2C``-like object (``readfrom_mem(addr, reg, n)``,
    ``writeto_mem(addr, reg, buf)``, and optionally ``readfrom_mem_into(addr, reg, buf)``);
    ``addr``: 7-bit address; ``name``: device name for messages; ``names``: dict register
    -> register name for messages; ``retries``: extra attempts after a failed transfer
    (0..10).
    """

    def __init__(self, i2c, addr, name, names, retries=2):
        if not 0 <= retries <= 10:
            raise ValueError("retries: need 0..10, got %r" % (retries,))
        self.i2c = i2c
        self.addr = addr
        self.name = name
        self.names = names
        self.retries = retries
        self.retries_total = 0  # transfers that failed and were tried again
        self.errors = 0  # transfers that failed on every attempt (raised DriverError)
        self._one = bytearray(1)  # write buffer: a register write allocates nothing
        self._into = hasattr(i2c, "readfrom_mem_into")

    def _fail(self, what, reg, err):
        self.errors += 1
        return DriverError("%s@0x%02x: I2C %s %s (0x%02x) failed after %d attempts: %r"
                           % (self.name, self.addr, what, self.names.get(reg, "reg"), reg,
                              self.retries + 1, err))

    def read(self, reg, n):
        """``n`` bytes from ``reg`` (a new bytes object: for setup, not the sample path)."""
        attempt = 0
        while True:
            try:
                return self.i2c.readfrom_mem(self.addr, reg, n)
            except OSError as e:
                if attempt >= self.retries:
                    raise self._fail("read", reg, e)
                attempt += 1
                self.retries_total += 1

    def read_into(self, reg, buf):
        """Fill ``buf`` (bytearray or memoryview) from ``reg`` without allocating, where
        the bus has ``readfrom_mem_into``."""
        attempt = 0
        while True:
            try:
                if self._into:
                    self.i2c.readfrom_mem_into(self.addr, reg, buf)
                else:
                    data = self.i2c.readfrom_mem(self.addr, reg, len(buf))
                    for i in range(len(buf)):
                        buf[i] = data[i]
                return
            except OSError as e:
                if attempt >= self.retries:
                    raise self._fail("read", reg, e)
                attempt += 1
                self.retries_total += 1

    def read_u8(self, reg):
        self.read_into(reg, self._one)
        return self._one[0]

    def write(self, reg, buf):
        attempt = 0
        while True:
            try:
                self.i2c.writeto_mem(self.addr, reg, buf)
                return
            except OSError as e:
                if attempt >= self.retries:
                    raise self._fail("write", reg, e)
                attempt += 1
                self.retries_total += 1

    def write_u8(self, reg, value):
        self._one[0] = value
        self.write(reg, self._one)


class I2CDriver:
    """Base of the I2C drivers: their error counters, read from ``self._regs`` (I2CRegs)."""

    _regs: "I2CRegs"

    @property
    def retries_total(self):
        return self._regs.retries_total

    @property
    def errors(self):
        return self._regs.errors


def sleep_ms(ms):
    """Blocking sleep, for the short waits of a reset or a die-temperature conversion."""
    import time

    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)
