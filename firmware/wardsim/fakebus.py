"""Register-level fakes of the bedside sensors and their buses, for the driver tests and
the simulator (``--fidelity raw`` feeds synthetic red/IR waveforms through
``FakeMAX30102``'s sample source, so the real driver and signal chain run on the host).

- ``FakeI2C``: a ``machine.I2C`` stand-in (``readfrom_mem``, ``readfrom_mem_into``,
  ``writeto_mem``) with devices attached by address, a transfer log and error
  injection (``fail_next(n)``: the next ``n`` transfers raise OSError(EIO)). An address with
  no device raises OSError(ENODEV), as MicroPython does.
- ``FakeMAX30102``: the MAX30102 register map with a 32-sample FIFO (5-bit pointers,
  overflow counter saturating at 31, rollover off), FIFO_DATA reads that advance the read
  pointer, a self-clearing reset bit and die-temperature conversions.
- ``FakeMAX30205``: temperature and configuration registers.
- ``FakeOneWire`` with ``FakeDS18B20``: ROM commands (skip, match), CONVERT T timed by a
  clock the test controls, scratchpad with a correct CRC8 unless corruption is injected.

The datasheet behaviour each fake models is stated where it is modelled. Written for
CPython; it uses nothing MicroPython lacks, so it could run on a board too.
"""

import errno

# --- I2C ------------------------------------------------------------------------------------


class FakeI2C:
    """A ``machine.I2C`` stand-in. ``attach(addr, dev)``: ``dev`` has ``read(reg, n)`` ->
    bytes and ``write(reg, data)``. ``log`` holds ``(op, addr, reg, data)`` for each
    successful transfer (op "r" or "w"), the last ``log_limit`` or so."""

    def __init__(self, log_limit=10000):
        self.devices = {}
        self.log = []
        self.log_limit = log_limit  # the oldest half is dropped beyond this (long sim runs)
        self.transfers = 0  # every attempted transfer, failed ones included
        self._fail = 0
        self._fail_errno = errno.EIO

    def attach(self, addr, dev):
        self.devices[addr] = dev
        return dev

    def fail_next(self, n, err=errno.EIO):
        """The next ``n`` transfers raise OSError(``err``) without reaching the device."""
        self._fail = n
        self._fail_errno = err

    def _dev(self, addr):
        self.transfers += 1
        if self._fail > 0:
            self._fail -= 1
            raise OSError(self._fail_errno)
        dev = self.devices.get(addr)
        if dev is None:
            raise OSError(errno.ENODEV)
        return dev

    def readfrom_mem(self, addr, reg, n):
        data = bytes(self._dev(addr).read(reg, n))
        self._record(("r", addr, reg, data))
        return data

    def readfrom_mem_into(self, addr, reg, buf):
        data = self.readfrom_mem(addr, reg, len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]

    def writeto_mem(self, addr, reg, buf):
        dev = self._dev(addr)
        data = bytes(buf)
        dev.write(reg, data)
        self._record(("w", addr, reg, data))

    def _record(self, entry):
        log = self.log
        log.append(entry)
        if len(log) > self.log_limit:
            del log[:len(log) // 2]

    def writes(self, addr=None):
        """``{reg: last byte written}`` (to ``addr``, or any device)."""
        out = {}
        for op, a, reg, data in self.log:
            if op == "w" and (addr is None or a == addr) and data:
                out[reg] = data[-1]
        return out


class RegisterFile:
    """A plain 256-byte register file; a multi-byte access walks successive registers
    (the auto-increment of most I2C sensors). Subclasses hook single registers."""

    def __init__(self):
        self.regs = bytearray(256)

    def read(self, reg, n):
        out = bytearray(n)
        for i in range(n):
            out[i] = self.read_reg((reg + i) & 0xFF)
        return out

    def write(self, reg, data):
        for i in range(len(data)):
            self.write_reg((reg + i) & 0xFF, data[i])

    def read_reg(self, reg):
        return self.regs[reg]

    def write_reg(self, reg, value):
        self.regs[reg] = value


# --- MAX30102 -------------------------------------------------------------------------------


def default_source(t_s):
    """A steady finger: red and IR DC levels in the finger-present range."""
    return 110000, 120000


class FakeMAX30102(RegisterFile):
    """The MAX30102 at the register level.

    Samples enter the FIFO only when the test (or simulator) calls ``produce(n)`` or
    ``advance_ms(ms)``: each new sample is ``source(t_s)`` -> ``(red, ir)`` (ints, masked to
    18 bits), ``t_s`` = sample number / effective rate (sample rate / averaging). Nothing
    is produced in shutdown or before a mode is set, as on the part.

    FIFO (datasheet "FIFO Configuration"): 32 samples; FIFO_WR_PTR and FIFO_RD_PTR are
    5-bit; when the FIFO is full a new sample is lost and OVF_COUNTER counts it (saturates at
    0x1F), because FIFO_ROLLOVER_EN is not modelled (the driver keeps it off). Reading
    FIFO_DATA streams the sample at the read pointer byte by byte (3 per LED, MSB first); the
    register address does not auto-increment there. Popping a complete sample advances the
    read pointer and resets OVF_COUNTER. ``junk_bits`` fills bits 23:18 of each sample,
    which the part leaves undefined, so a driver that does not mask is caught.

    Counters for tests: ``produced``, ``popped``, ``dropped``, ``unreported`` (drops
    beyond a saturated OVF_COUNTER).
    """

    ADDR = 0x57

    def __init__(self, source=default_source, part_id=0x15, junk_bits=True, reset_reads=1,
                 temp_reads=1, die_temp_c=31.25):
        RegisterFile.__init__(self)
        self.source = source
        self.part_id = part_id
        self.junk_bits = junk_bits
        self.reset_reads = reset_reads  # reads of MODE_CONFIG that still show RESET (None: stuck)
        self.temp_reads = temp_reads  # reads of TEMP_CONFIG that still show TEMP_EN
        self.die_temp_c = die_temp_c
        self.produced = 0
        self.popped = 0
        self.dropped = 0
        self.unreported = 0  # dropped while OVF_COUNTER was saturated at 31
        self._power_on()

    def _power_on(self):
        for i in range(256):
            self.regs[i] = 0
        self.regs[0xFE] = 0x03  # REV_ID
        self.regs[0xFF] = self.part_id
        self.fifo = [(0, 0)] * 32
        self.wr = self.rd = 0
        self.count = 0
        self.ovf = 0
        self._byte = 0  # next byte of the sample at rd being streamed through FIFO_DATA
        self._reset_left = 0
        self._temp_left = 0
        self._t_acc_ms = 0.0

    # configuration, decoded
    @property
    def mode(self):
        return self.regs[0x09] & 0x07

    @property
    def shutdown(self):
        return bool(self.regs[0x09] & 0x80)

    @property
    def channels(self):
        return 2 if self.mode in (0x03, 0x07) else 1

    @property
    def rate_sps(self):
        return (50, 100, 200, 400, 800, 1000, 1600, 3200)[(self.regs[0x0A] >> 2) & 0x07]

    @property
    def averaging(self):
        return (1, 2, 4, 8, 16, 32, 32, 32)[self.regs[0x08] >> 5]

    def sampling(self):
        return self.mode in (0x02, 0x03, 0x07) and not self.shutdown

    # samples
    def produce(self, n=1):
        """Push ``n`` samples (if the part is sampling); returns how many were lost."""
        lost = 0
        if not self.sampling():
            return 0
        eff = self.rate_sps / self.averaging
        for _ in range(n):
            red, ir = self.source(self.produced / eff)
            self.produced += 1
            if self.count == 32:
                self.dropped += 1
                lost += 1
                if self.ovf < 0x1F:
                    self.ovf += 1
                else:
                    self.unreported += 1
                continue
            self.fifo[self.wr] = (int(red) & 0x3FFFF, int(ir) & 0x3FFFF)
            self.wr = (self.wr + 1) & 0x1F
            self.count += 1
        return lost

    def advance_ms(self, ms):
        """Let ``ms`` of time pass at the configured effective rate."""
        if not self.sampling():
            return 0
        self._t_acc_ms += ms * self.rate_sps / self.averaging / 1000.0
        n = int(self._t_acc_ms)
        self._t_acc_ms -= n
        return self.produce(n)

    def _sample_bytes(self):
        red, ir = self.fifo[self.rd]
        junk = 0xA8 if self.junk_bits else 0  # bits 23:18
        b = [junk | (red >> 16), (red >> 8) & 0xFF, red & 0xFF]
        if self.channels == 2:
            b += [junk | (ir >> 16), (ir >> 8) & 0xFF, ir & 0xFF]
        return b

    def read(self, reg, n):
        if reg == 0x07:  # FIFO_DATA: no address auto-increment
            out = bytearray(n)
            for i in range(n):
                out[i] = self._fifo_byte()
            return out
        return RegisterFile.read(self, reg, n)

    def _fifo_byte(self):
        b = self._sample_bytes()
        if self.count == 0:
            return b[self._byte % len(b)]  # empty: the part repeats stale data; nothing pops
        v = b[self._byte]
        self._byte += 1
        if self._byte == len(b):
            self._byte = 0
            self.rd = (self.rd + 1) & 0x1F
            self.count -= 1
            self.popped += 1
            self.ovf = 0
        return v

    def read_reg(self, reg):
        if reg == 0x04:
            return self.wr
        if reg == 0x05:
            return self.ovf
        if reg == 0x06:
            return self.rd
        if reg == 0x07:
            return self._fifo_byte()
        if reg == 0x09 and self.regs[0x09] & 0x40:
            if self._reset_left is not None:
                if self._reset_left <= 0:
                    self._power_on()
                else:
                    self._reset_left -= 1
            return self.regs[0x09]
        if reg == 0x21 and self.regs[0x21] & 0x01:
            if self._temp_left <= 0:
                self._finish_temp()
            else:
                self._temp_left -= 1
            return self.regs[0x21]
        if reg == 0x01:  # INT_STATUS_2 clears on read
            v = self.regs[0x01]
            self.regs[0x01] = 0
            return v
        return self.regs[reg]

    def write_reg(self, reg, value):
        if reg in (0x04, 0x06):
            if reg == 0x04:
                self.wr = value & 0x1F
            else:
                self.rd = value & 0x1F
            # The pointers alone say how many samples are stored (a full FIFO reads empty).
            self.count = (self.wr - self.rd) & 0x1F
            self._byte = 0
            return
        if reg == 0x05:
            self.ovf = value & 0x1F
            return
        if reg in (0xFE, 0xFF):
            return  # read-only
        self.regs[reg] = value
        if reg == 0x09 and value & 0x40:
            self._reset_left = self.reset_reads
        if reg == 0x21 and value & 0x01:
            self._temp_left = self.temp_reads

    def _finish_temp(self):
        whole = int(self.die_temp_c // 1)
        frac = int(round((self.die_temp_c - whole) * 16)) & 0x0F
        self.regs[0x1F] = whole & 0xFF
        self.regs[0x20] = frac
        self.regs[0x21] &= ~0x01
        self.regs[0x01] |= 0x02  # DIE_TEMP_RDY


# --- MAX30205 -------------------------------------------------------------------------------


class FakeMAX30205(RegisterFile):
    """The MAX30205 at the register level: 0x00 temperature (16-bit two's complement, MSB
    first, 1/256 °C), 0x01 configuration (bit 0 SHUTDOWN, bit 5 DATA FORMAT extended
    (+64 °C), bit 7 ONE-SHOT, self-clearing), 0x02 THYST, 0x03 TOS (16-bit each).
    Registers are byte-addressed by pointer here: a 2-byte read of 0x00 gives MSB, LSB.
    ``temp_c`` is the body temperature the sensor sees; in shutdown the temperature
    register keeps the last conversion, and a one-shot converts once."""

    ADDR = 0x48

    def __init__(self, temp_c=36.75):
        RegisterFile.__init__(self)
        self.temp_c = temp_c
        self.config = 0
        self._held = None  # last conversion while shut down
        self.one_shots = 0

    @staticmethod
    def encode(temp_c, extended=False):
        if extended:
            temp_c -= 64
        raw = int(round(temp_c * 256))
        raw = max(-32768, min(32767, raw))
        return raw & 0xFFFF

    def read(self, reg, n):
        if reg == 0x00:
            if self.config & 0x01 and self._held is not None:
                raw = self._held
            else:
                raw = self.encode(self.temp_c, bool(self.config & 0x20))
            data = bytes([raw >> 8, raw & 0xFF])
            return (data * ((n + 1) // 2))[:n]
        if reg == 0x01:
            return bytes([self.config] * n)
        return RegisterFile.read(self, reg, n)

    def write(self, reg, data):
        if reg == 0x01 and data:
            value = data[0]
            if value & 0x01 and not self.config & 0x01:
                self._held = self.encode(self.temp_c, bool(value & 0x20))  # last conversion
            if value & 0x80 and value & 0x01:
                self._held = self.encode(self.temp_c, bool(value & 0x20))
                self.one_shots += 1
                value &= ~0x80  # one-shot bit clears when the conversion is done
            self.config = value & 0xFF
            return
        RegisterFile.write(self, reg, data)


# --- 1-Wire ---------------------------------------------------------------------------------


def crc8(data):
    """Dallas/Maxim 1-Wire CRC8 (x^8 + x^5 + x^4 + 1, LSB first); 0 over data + its CRC."""
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 0x01
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


def make_rom(serial, family=0x28):
    """An 8-byte ROM code: family, 48-bit serial (LSB first), CRC8."""
    body = bytes([family]) + bytes((serial >> (8 * i)) & 0xFF for i in range(6))
    return body + bytes([crc8(body)])


class FakeDS18B20:
    """A DS18B20 as the bus sees it. ``clock()`` -> ms (the test's clock): CONVERT T
    finishes ``conv_ms`` later (750 at 12 bits, scaled by resolution); until then the
    scratchpad still holds the previous result (85.0 °C after power-on). ``temp_c`` is the
    temperature it measures. ``corrupt_crc = n`` flips a bit of the CRC byte in the next
    ``n`` scratchpad reads."""

    CONV_MS = {9: 94, 10: 188, 11: 375, 12: 750}

    def __init__(self, clock, serial=1, temp_c=36.5):
        self.clock = clock
        self.rom = make_rom(serial)
        self.temp_c = temp_c
        self.corrupt_crc = 0
        self.conversions = 0
        self.th, self.tl, self.cfg = 0x4B, 0x46, 0x7F  # power-on: 12 bits
        self.raw = 0x0550  # 85.0 °C, the power-on value
        self._conv_at = None

    @property
    def resolution(self):
        return 9 + ((self.cfg >> 5) & 0x03)

    def _settle(self):
        if self._conv_at is not None and self.clock() - self._conv_at >= self.CONV_MS[self.resolution]:
            raw = int(round(self.temp_c * 16)) & 0xFFFF
            raw &= ~((1 << (12 - self.resolution)) - 1) & 0xFFFF  # undefined low bits: zero
            self.raw = raw
            self._conv_at = None

    def convert(self):
        self._settle()
        self._conv_at = self.clock()
        self.conversions += 1

    def busy(self):
        self._settle()
        return self._conv_at is not None

    def scratchpad(self):
        self._settle()
        body = bytes([self.raw & 0xFF, self.raw >> 8, self.th, self.tl, self.cfg, 0xFF, 0x0C, 0x10])
        crc = crc8(body)
        if self.corrupt_crc > 0:
            self.corrupt_crc -= 1
            crc ^= 0x01
        return body + bytes([crc])

    def write_scratchpad(self, th, tl, cfg):
        self.th, self.tl = th, tl
        self.cfg = (cfg & 0x60) | 0x1F  # only R1:R0 are writable


class FakeOneWire:
    """A ``onewire.OneWire`` stand-in with the methods the DS18B20 driver uses:
    ``reset(required=False)``, ``writebyte``, ``readbyte``, ``write``, ``readinto``; and
    ``scan`` (the ROM codes on the bus). It decodes the transaction: reset, ROM command
    (0xCC skip ROM, 0x55 match ROM), function command (0x44 CONVERT T, 0xBE READ
    SCRATCHPAD, 0x4E WRITE SCRATCHPAD). A read while converting returns 0 bits (the part
    holds the line low until done), after that the selected device's scratchpad bytes, then
    0xFF. ``present=False`` makes resets see no presence pulse; ``fail_next(n)`` makes the
    next ``n`` resets raise OSError (a shorted bus)."""

    def __init__(self, devices=()):
        self.devices = list(devices)
        self.present = True
        self.log = []
        self._fail = 0
        self._state = "idle"
        self._selected = []
        self._rom_buf = bytearray()
        self._out = bytearray()
        self._in = bytearray()

    def fail_next(self, n):
        self._fail = n

    def _record(self, entry):
        log = self.log
        log.append(entry)
        if len(log) > 10000:
            del log[:5000]  # long simulator runs: keep the recent transfers only

    def reset(self, required=False):
        if self._fail > 0:
            self._fail -= 1
            raise OSError(errno.EIO)
        self._state = "rom"
        self._selected = []
        self._out = bytearray()
        self._in = bytearray()
        self._record(("reset",))
        ok = self.present and bool(self.devices)
        if required and not ok:
            raise OSError(errno.ENODEV)
        return ok

    def scan(self):
        return [d.rom for d in self.devices] if self.present else []

    def write(self, buf):
        for b in buf:
            self.writebyte(b)

    def writebyte(self, b):
        self._record(("w", b))
        if self._state == "rom":
            if b == 0xCC:
                self._selected = list(self.devices)
                self._state = "func"
            elif b == 0x55:
                self._rom_buf = bytearray()
                self._state = "match"
            else:
                self._state = "idle"
        elif self._state == "match":
            self._rom_buf.append(b)
            if len(self._rom_buf) == 8:
                self._selected = [d for d in self.devices if d.rom == bytes(self._rom_buf)]
                self._state = "func"
        elif self._state == "func":
            if b == 0x44:
                for d in self._selected:
                    d.convert()
                self._state = "converting"
            elif b == 0xBE:
                self._out = bytearray(self._selected[0].scratchpad()) if len(self._selected) == 1 else bytearray()
                self._state = "reading"
            elif b == 0x4E:
                self._in = bytearray()
                self._state = "writing"
            else:
                self._state = "idle"
        elif self._state == "writing":
            self._in.append(b)
            if len(self._in) == 3:
                for d in self._selected:
                    d.write_scratchpad(self._in[0], self._in[1], self._in[2])
                self._state = "idle"

    def readbyte(self):
        if self._state == "converting":
            return 0x00 if any(d.busy() for d in self._selected) else 0xFF
        if self._state == "reading" and self._out:
            v = self._out[0]
            self._out = self._out[1:]
            return v
        return 0xFF

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.readbyte()
