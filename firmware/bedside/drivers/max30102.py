"""MAX30102 pulse oximeter (also the MAX30101/MAX30105 register map) over I2C.

Register map and bit fields from the Maxim MAX30102 datasheet (rev 1). The part is set up
in SpO2 mode (red + IR) or heart-rate mode (red only); the samples come out of a 32-deep
FIFO that the caller drains often enough (at 100 sps, every 320 ms at the latest).

Usage (who calls it: a board profile's sensor task, about every 100..250 ms)::

    ox = MAX30102(i2c)                 # no bus traffic yet
    ox.init(sample_rate=100, pulse_width=411, adc_range=4096, averaging=4,
            red_ma=7.0, ir_ma=7.0)     # part id, reset, config, empty FIFO
    red = array.array("l", [0] * 32); ir = array.array("l", [0] * 32)
    n = ox.read_fifo(red, ir)          # n samples, oldest first; ox.last_lost lost before them

Contract of a sample: an int 0..262143 (18 bits). The ADC data is left-justified, so at a
15..17-bit pulse width the low bits are zero and the scale stays the same (full scale is
always 2**18 - 1 = ``adc_range`` nA).

Overflow is never silent: when the FIFO filled up, the part dropped new samples and counted
them in OVF_COUNTER (saturating at 31). ``read_fifo`` adds that count to ``lost`` and sets
``last_lost``: a non-zero ``last_lost`` means a gap *before* the samples just returned, so
the signal chain must restart its beat detection rather than join the two pieces.

Red and IR are swapped on some clone boards (docs/clinical.md): ``swap_leds=True`` swaps them
back in ``read_fifo`` and in the LED currents, so the rest of the firmware sees red as red.
"""

from . import DriverError, I2CDriver, I2CRegs, sleep_ms

ADDR = 0x57
PART_ID = 0x15

# registers
INT_STATUS_1 = 0x00
INT_STATUS_2 = 0x01
INT_ENABLE_1 = 0x02
INT_ENABLE_2 = 0x03
FIFO_WR_PTR = 0x04
OVF_COUNTER = 0x05
FIFO_RD_PTR = 0x06
FIFO_DATA = 0x07
FIFO_CONFIG = 0x08
MODE_CONFIG = 0x09
SPO2_CONFIG = 0x0A
LED1_PA = 0x0C  # red
LED2_PA = 0x0D  # IR
TEMP_INT = 0x1F
TEMP_FRAC = 0x20
TEMP_CONFIG = 0x21
REV_ID = 0xFE
PART_ID_REG = 0xFF

NAMES = {
    INT_STATUS_1: "INT_STATUS_1", INT_STATUS_2: "INT_STATUS_2", INT_ENABLE_1: "INT_ENABLE_1",
    INT_ENABLE_2: "INT_ENABLE_2", FIFO_WR_PTR: "FIFO_WR_PTR", OVF_COUNTER: "OVF_COUNTER",
    FIFO_RD_PTR: "FIFO_RD_PTR", FIFO_DATA: "FIFO_DATA", FIFO_CONFIG: "FIFO_CONFIG",
    MODE_CONFIG: "MODE_CONFIG", SPO2_CONFIG: "SPO2_CONFIG", LED1_PA: "LED1_PA",
    LED2_PA: "LED2_PA", TEMP_INT: "TEMP_INTR", TEMP_FRAC: "TEMP_FRAC",
    TEMP_CONFIG: "TEMP_CONFIG", REV_ID: "REV_ID", PART_ID_REG: "PART_ID",
}

# MODE_CONFIG
SHDN = 0x80
RESET = 0x40
MODE_HR = 0x02  # red only
MODE_SPO2 = 0x03  # red and IR
MODES = {"hr": MODE_HR, "spo2": MODE_SPO2}

# setting -> register code (datasheet register descriptions of FIFO_CONFIG and SPO2_CONFIG)
AVERAGING = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4, 32: 5}  # FIFO_CONFIG SMP_AVE, bits 7:5
ADC_RANGE = {2048: 0, 4096: 1, 8192: 2, 16384: 3}  # nA full scale, SPO2_CONFIG bits 6:5
SAMPLE_RATE = {50: 0, 100: 1, 200: 2, 400: 3, 800: 4, 1000: 5, 1600: 6, 3200: 7}  # bits 4:2
PULSE_WIDTH = {69: 0, 118: 1, 215: 2, 411: 3}  # µs, bits 1:0; ADC 15, 16, 17, 18 bits
# In SpO2 mode both LEDs pulse within one sample period, so a wide pulse caps the rate
# (datasheet table "SpO2 mode, allowed settings"). The part accepts any pair without
# complaint, so the driver refuses the unspecified ones. HR mode allows more; not checked.
SPO2_MAX_RATE = {69: 1600, 118: 1000, 215: 800, 411: 400}

LED_MA_MAX = 51.0  # 0xFF * 0.2 mA
FIFO_DEPTH = 32
RESET_POLLS = 20  # x 1 ms; the reset takes well under 1 ms
TEMP_POLLS = 50  # x 2 ms; a die-temperature conversion takes ~29 ms


class MAX30102(I2CDriver):
    """One MAX30102/MAX30101/MAX30105 on ``i2c`` (a ``machine.I2C``-like object).

    Counters (never reset by the driver): ``lost`` samples dropped by a full FIFO,
    ``retries_total`` I2C transfers tried again, ``errors`` transfers that failed for good.
    """

    def __init__(self, i2c, addr=ADDR, retries=2, swap_leds=False):
        self._regs = I2CRegs(i2c, addr, "max30102", NAMES, retries)
        self.swap_leds = swap_leds
        self.mode = None  # "spo2" | "hr" once configured
        self._mode_bits = 0  # MODE_CONFIG mode field for self.mode (0: none yet)
        self.lost = 0
        self.last_lost = 0
        self._channels = 2
        self._ptrs = bytearray(3)  # FIFO_WR_PTR, OVF_COUNTER, FIFO_RD_PTR in one read
        self._ovf = 0
        self._raw = bytearray(FIFO_DEPTH * 6)
        # One view per possible burst length, made once: slicing a memoryview allocates on
        # MicroPython, and the FIFO is drained many times a second.
        mv = memoryview(self._raw)
        self._views = [mv[:k] for k in range(FIFO_DEPTH * 6 + 1)]
        self._fifo_cfg = 0
        self._spo2_cfg = 0

    # --- identity, reset, power -------------------------------------------------------

    def part_id(self):
        return self._regs.read_u8(PART_ID_REG)

    def check_part(self):
        """Raise DriverError unless the part id is 0x15 (MAX30101/2/5 all answer 0x15)."""
        pid = self.part_id()
        if pid != PART_ID:
            raise DriverError("max30102: part id 0x%02x, expected 0x%02x" % (pid, PART_ID))
        return pid

    def reset(self):
        """Software reset: every register to its power-on value. Waits until the part
        clears the RESET bit; DriverError when it never does."""
        self._regs.write_u8(MODE_CONFIG, RESET)
        for _ in range(RESET_POLLS):
            if not self._regs.read_u8(MODE_CONFIG) & RESET:
                self.mode = None
                self._mode_bits = 0
                self._fifo_cfg = self._spo2_cfg = 0
                return
            sleep_ms(1)
        raise DriverError("max30102: RESET bit of MODE_CONFIG (0x09) did not clear")

    def shutdown(self):
        """Power save (~0.7 µA): LEDs off, no samples; registers keep their values."""
        self._regs.write_u8(MODE_CONFIG, SHDN | self._mode_bits)

    def wakeup(self):
        """Leave shutdown: sampling resumes in the configured mode (the FIFO keeps what it
        had; samples resume ~1 sample period later)."""
        self._regs.write_u8(MODE_CONFIG, self._mode_bits)

    # --- configuration ------------------------------------------------------------------

    def init(self, mode="spo2", sample_rate=100, pulse_width=411, adc_range=4096,
             averaging=4, red_ma=7.0, ir_ma=7.0):
        """Check the part id, reset, configure and empty the FIFO; the part then samples.
        Settings are validated before any bus traffic (ValueError naming the setting)."""
        check_settings(mode, sample_rate, pulse_width, adc_range, averaging)
        led_code("red_ma", red_ma)
        led_code("ir_ma", ir_ma)
        self.check_part()
        self.reset()
        self.set_averaging(averaging)
        self.set_spo2_config(sample_rate, pulse_width, adc_range, mode)
        self.set_leds(red_ma, ir_ma)
        self.clear_fifo()
        self.set_mode(mode)

    def set_mode(self, mode):
        """"spo2" (red and IR, 6 bytes per sample) or "hr" (LED1 only, 3 bytes; with
        ``swap_leds`` LED1 is the IR LED, still returned in ``red``)."""
        if mode not in MODES:
            raise ValueError("mode: need 'spo2' or 'hr', got %r" % (mode,))
        self._regs.write_u8(MODE_CONFIG, MODES[mode])
        self.mode = mode
        self._mode_bits = MODES[mode]
        self._channels = 2 if mode == "spo2" else 1

    def set_averaging(self, averaging):
        """Samples averaged on chip per FIFO sample: 1, 2, 4, 8, 16, 32. FIFO rollover
        stays off, so a full FIFO keeps its oldest samples and counts the lost ones."""
        if averaging not in AVERAGING:
            raise ValueError("averaging: need one of 1, 2, 4, 8, 16, 32, got %r" % (averaging,))
        self._fifo_cfg = AVERAGING[averaging] << 5
        self._regs.write_u8(FIFO_CONFIG, self._fifo_cfg)

    def set_spo2_config(self, sample_rate=100, pulse_width=411, adc_range=4096, mode=None):
        """ADC full scale (nA), sample rate (sps) and LED pulse width (µs, which also sets
        the ADC resolution: 69 -> 15 bits .. 411 -> 18 bits). ``mode`` (default: the
        current one, else "spo2") decides which rate/width pairs are allowed."""
        if mode is None:
            mode = self.mode or "spo2"
        check_settings(mode, sample_rate, pulse_width, adc_range, 1)
        self._spo2_cfg = (ADC_RANGE[adc_range] << 5) | (SAMPLE_RATE[sample_rate] << 2) | PULSE_WIDTH[pulse_width]
        self._regs.write_u8(SPO2_CONFIG, self._spo2_cfg)

    def set_leds(self, red_ma, ir_ma):
        """LED drive currents in mA, 0..51.0 in 0.2 mA steps (rounded to the nearest)."""
        red, ir = led_code("red_ma", red_ma), led_code("ir_ma", ir_ma)
        if self.swap_leds:
            red, ir = ir, red
        self._regs.write_u8(LED1_PA, red)
        self._regs.write_u8(LED2_PA, ir)

    # --- FIFO ---------------------------------------------------------------------------

    def clear_fifo(self):
        """Empty the FIFO: zero the write pointer, overflow counter and read pointer."""
        self._regs.write_u8(FIFO_WR_PTR, 0)
        self._regs.write_u8(OVF_COUNTER, 0)
        self._regs.write_u8(FIFO_RD_PTR, 0)

    def available(self):
        """Samples waiting in the FIFO (0..32) and samples lost since the last read
        (0..31, saturating), as ``(n, lost)``; reads the pointers, not the samples."""
        n = self._pointers()
        return n, self._ovf

    def _pointers(self):
        # One 3-byte read: FIFO_WR_PTR, OVF_COUNTER, FIFO_RD_PTR are adjacent registers.
        self._regs.read_into(FIFO_WR_PTR, self._ptrs)
        wr, ovf, rd = self._ptrs[0] & 0x1F, self._ptrs[1] & 0x1F, self._ptrs[2] & 0x1F
        self._ovf = ovf
        if ovf:
            # The part only counts a lost sample when the FIFO is full; then wr == rd,
            # which the pointers alone cannot tell from empty.
            return FIFO_DEPTH
        return (wr - rd) & 0x1F

    def read_fifo(self, red, ir=None, start=0):
        """Drain the FIFO into the caller's buffers: ``red[start + i]`` and
        ``ir[start + i]`` for ``i < n``, oldest first; returns ``n``. At most
        ``len(red) - start`` samples are taken (the rest wait for the next call).

        ``red``/``ir``: preallocated, e.g. ``array.array("l", [0] * 32)``; ``ir`` is not
        touched in "hr" mode. Samples lost to a full FIFO since the last call are added to
        ``lost`` and set in ``last_lost`` (0 when none). Allocates nothing.
        """
        n = self._pointers()
        self.last_lost = self._ovf
        self.lost += self._ovf
        room = len(red) - start
        if n > room:
            n = room
        if n <= 0:
            return 0
        ch = self._channels
        self._regs.read_into(FIFO_DATA, self._views[n * 3 * ch])
        raw = self._raw
        if ch == 2 and self.swap_leds:
            red, ir = ir, red
        j = 0
        for i in range(start, start + n):
            red[i] = ((raw[j] << 16) | (raw[j + 1] << 8) | raw[j + 2]) & 0x3FFFF
            if ch == 2:
                ir[i] = ((raw[j + 3] << 16) | (raw[j + 4] << 8) | raw[j + 5]) & 0x3FFFF
            j += 3 * ch
        return n

    # --- die temperature ----------------------------------------------------------------

    def start_temp(self):
        """Start one die-temperature conversion (~29 ms); see ``temp_ready``/``read_temp``."""
        self._regs.write_u8(TEMP_CONFIG, 0x01)

    def temp_ready(self):
        """True once the conversion finished (the part clears TEMP_EN)."""
        return not self._regs.read_u8(TEMP_CONFIG) & 0x01

    def read_temp(self):
        """The die temperature in °C (-40..85, 0.0625 °C steps): TINT is a two's-complement
        integer, TFRAC adds 1/16 °C steps (so -0.5 °C is TINT -1, TFRAC 8). The die runs
        warmer than skin: use it to correct the LEDs' drift, never as a body temperature."""
        b = self._regs.read(TEMP_INT, 2)
        whole = b[0] - 256 if b[0] & 0x80 else b[0]
        return whole + (b[1] & 0x0F) * 0.0625

    def die_temp(self):
        """Blocking: start a conversion, wait for it (<= 100 ms), return °C."""
        self.start_temp()
        for _ in range(TEMP_POLLS):
            sleep_ms(2)
            if self.temp_ready():
                return self.read_temp()
        raise DriverError("max30102: TEMP_EN of TEMP_CONFIG (0x21) did not clear")


def check_settings(mode, sample_rate, pulse_width, adc_range, averaging):
    """ValueError naming the first bad setting; see the tables above for valid values."""
    if mode not in MODES:
        raise ValueError("mode: need 'spo2' or 'hr', got %r" % (mode,))
    if sample_rate not in SAMPLE_RATE:
        raise ValueError("sample_rate: need one of 50, 100, 200, 400, 800, 1000, 1600, 3200 sps, got %r" % (sample_rate,))
    if pulse_width not in PULSE_WIDTH:
        raise ValueError("pulse_width: need one of 69, 118, 215, 411 us, got %r" % (pulse_width,))
    if adc_range not in ADC_RANGE:
        raise ValueError("adc_range: need one of 2048, 4096, 8192, 16384 nA, got %r" % (adc_range,))
    if averaging not in AVERAGING:
        raise ValueError("averaging: need one of 1, 2, 4, 8, 16, 32, got %r" % (averaging,))
    if mode == "spo2" and sample_rate > SPO2_MAX_RATE[pulse_width]:
        raise ValueError("sample_rate: %d sps is too fast for pulse_width %d us in spo2 mode (max %d)"
                         % (sample_rate, pulse_width, SPO2_MAX_RATE[pulse_width]))


def led_code(name, ma):
    """mA -> LED_PA code (0.2 mA per step, nearest); ValueError naming ``name``."""
    if not 0 <= ma <= LED_MA_MAX:
        raise ValueError("%s: need 0..51.0 mA, got %r" % (name, ma))
    return int(ma * 5 + 0.5)
