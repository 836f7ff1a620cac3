"""Temperature drivers against the fakes: MAX30205 conversion table and I2C retries;
DS18B20 non-blocking timing, CRC check, 85.0 °C power-on value."""

import errno

import pytest

from bedside.drivers import DriverError
from bedside.drivers import ds18b20 as dsmod
from bedside.drivers.ds18b20 import DS18B20
from bedside.drivers.max30205 import MAX30205, to_celsius
from wardsim.fakebus import FakeDS18B20, FakeI2C, FakeMAX30205, FakeOneWire, crc8, make_rom

# --- MAX30205 -------------------------------------------------------------------------------

# (register bytes MSB, LSB; °C) from the datasheet's format: 16-bit two's complement, 1/256 °C
MAX30205_TABLE = [
    (0x00, 0x00, 0.0),
    (0x00, 0x01, 0.00390625),
    (0x25, 0x00, 37.0),
    (0x25, 0x80, 37.5),
    (0x24, 0xC0, 36.75),
    (0x27, 0x1A, 39.1015625),
    (0x32, 0x00, 50.0),
    (0x7F, 0xFF, 127.99609375),
    (0xFF, 0xFF, -0.00390625),
    (0xFF, 0x00, -1.0),
    (0xF6, 0x80, -9.5),
    (0xD8, 0x00, -40.0),
    (0x80, 0x00, -128.0),
]


@pytest.mark.parametrize("msb,lsb,celsius", MAX30205_TABLE)
def test_max30205_conversion_table(msb, lsb, celsius):
    assert to_celsius(msb, lsb) == celsius
    bus = FakeI2C()
    bus.attach(0x48, FakeMAX30205(temp_c=celsius))
    t = MAX30205(bus)
    t.init()
    assert t.read() == celsius
    assert bus.log[-1][3] == bytes([msb, lsb])


def test_max30205_init_shutdown_one_shot():
    bus = FakeI2C()
    dev = bus.attach(0x48, FakeMAX30205(temp_c=36.5))
    t = MAX30205(bus)
    assert t.init() == 0x00  # normal format, continuous
    t.shutdown()
    assert dev.config == 0x01
    dev.temp_c = 38.0
    assert t.read() == 36.5  # shut down: the last conversion
    t.one_shot()
    assert dev.one_shots == 1 and dev.config == 0x01  # ONE-SHOT cleared when done
    assert t.read() == 38.0
    t.wakeup()
    assert dev.config == 0x00
    # from continuous conversion: shut down first, then ONE-SHOT, in two writes
    dev.temp_c = 37.5
    n = len(bus.log)
    t.one_shot()
    assert [e[3] for e in bus.log[n:] if e[0] == "w"] == [b"\x01", b"\x81"]
    assert dev.one_shots == 2 and t.read() == 37.5


def test_max30205_retries_then_names_the_register():
    bus = FakeI2C()
    bus.attach(0x48, FakeMAX30205(temp_c=37.0))
    t = MAX30205(bus, retries=2)
    t.init()
    bus.fail_next(2)
    assert t.read() == 37.0
    assert (t.retries_total, t.errors) == (2, 0)
    bus.fail_next(3, errno.ETIMEDOUT)
    with pytest.raises(DriverError, match=r"max30205@0x48: I2C read TEMP \(0x00\)"):
        t.read()
    assert (t.retries_total, t.errors) == (4, 1)


def test_max30205_absent_is_a_driver_error_at_init():
    with pytest.raises(DriverError, match="CONFIG"):
        MAX30205(FakeI2C()).init()


# --- DS18B20 --------------------------------------------------------------------------------


class Clock:
    def __init__(self, ms=100000):
        self.ms = ms

    def __call__(self):
        return self.ms


def ds(temp_c=36.5, resolution=12, rom=False, retries=2):
    clock = Clock()
    dev = FakeDS18B20(clock, serial=0x1234, temp_c=temp_c)
    bus = FakeOneWire([dev])
    t = DS18B20(bus, rom=dev.rom if rom else None, resolution=resolution, retries=retries)
    t.init()
    return clock, dev, bus, t


def test_crc8_matches_the_1wire_reference():
    # ROM code from Maxim application note 27's worked example
    assert crc8(bytes([0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00])) == 0xA2
    assert dsmod.crc8(bytes([0x02, 0x1C, 0xB8, 0x01, 0x00, 0x00, 0x00, 0xA2])) == 0
    rom = make_rom(0xABCDEF)
    assert dsmod.crc8(rom, 7) == rom[7]


@pytest.mark.parametrize("resolution,conv_ms", [(9, 94), (10, 188), (11, 375), (12, 750)])
def test_ds18b20_not_ready_before_the_conversion_time_ready_after(resolution, conv_ms):
    clock, dev, bus, t = ds(temp_c=37.25, resolution=resolution)
    assert dev.resolution == resolution
    assert not t.ready(clock.ms)  # nothing started
    t.start(clock.ms)
    assert dev.conversions == 1
    for dt in (0, 1, conv_ms // 2, conv_ms - 1):
        assert not t.ready(clock.ms + dt)
    with pytest.raises(RuntimeError, match="before"):
        t.read(clock.ms + conv_ms - 1)
    clock.ms += conv_ms
    assert t.ready(clock.ms)
    assert t.read(clock.ms) == (37.25 if resolution >= 10 else 37.0)  # 9 bits: 0.5 °C steps
    with pytest.raises(RuntimeError, match="without start"):
        t.read(clock.ms)  # each conversion is read once


def test_ds18b20_start_returns_without_waiting():
    """start() is bus traffic only: no sleep, whatever the clock says."""
    import time

    clock, dev, bus, t = ds()
    t0 = time.monotonic()
    t.start(clock.ms)
    assert time.monotonic() - t0 < 0.375  # half a 12-bit conversion (750 ms): a wait would show


# (°C, raw scratchpad bytes LSB, MSB) from the datasheet's temperature/data table
DS_TABLE = [
    (125.0, 0xD0, 0x07),
    (25.0625, 0x91, 0x01),
    (10.125, 0xA2, 0x00),
    (0.5, 0x08, 0x00),
    (0.0, 0x00, 0x00),
    (-0.5, 0xF8, 0xFF),
    (-10.125, 0x5E, 0xFF),
    (-25.0625, 0x6F, 0xFE),
    (-55.0, 0x90, 0xFC),
]


@pytest.mark.parametrize("celsius,lsb,msb", DS_TABLE)
def test_ds18b20_conversion_table(celsius, lsb, msb):
    clock, dev, bus, t = ds(temp_c=celsius)
    t.start(clock.ms)
    clock.ms += 750
    assert dev.scratchpad()[:2] == bytes([lsb, msb])
    assert t.read(clock.ms) == celsius


def test_ds18b20_power_on_value_is_not_a_temperature():
    clock, dev, bus, t = ds(temp_c=36.6)
    t.start(clock.ms)
    clock.ms += 750
    dev.raw = 0x0550  # a brown-out reset the part after CONVERT T
    dev._conv_at = None
    assert t.read(clock.ms) is None
    assert t.invalid == 1


def test_ds18b20_bad_crc_is_retried_then_an_error():
    clock, dev, bus, t = ds(temp_c=36.6, retries=2)
    t.start(clock.ms)
    clock.ms += 750
    dev.corrupt_crc = 1
    assert t.read(clock.ms) == 36.625  # 1/16 °C steps: 36.6 -> 36.625
    assert (t.retries_total, t.errors) == (1, 0)
    t.start(clock.ms)
    clock.ms += 750
    dev.corrupt_crc = 3
    with pytest.raises(DriverError, match="CRC"):
        t.read(clock.ms)
    assert t.errors == 1


def test_ds18b20_bad_crc_surfaces_at_once_without_retries():
    clock, dev, bus, t = ds(retries=0)
    t.start(clock.ms)
    clock.ms += 750
    dev.corrupt_crc = 1
    with pytest.raises(DriverError, match="CRC"):
        t.read(clock.ms)


def test_ds18b20_all_zero_scratchpad_passes_crc_but_is_rejected():
    clock, dev, bus, t = ds()
    t.start(clock.ms)
    clock.ms += 750
    bus.readinto = lambda buf: buf.__setitem__(slice(None), bytes(len(buf)))
    with pytest.raises(DriverError, match="configuration byte"):
        t.read(clock.ms)


def test_ds18b20_addressed_by_rom_among_several():
    clock = Clock()
    a = FakeDS18B20(clock, serial=1, temp_c=36.0)
    b = FakeDS18B20(clock, serial=2, temp_c=38.5)
    bus = FakeOneWire([a, b])
    assert bus.scan() == [a.rom, b.rom]
    t = DS18B20(bus, rom=b.rom)
    t.init()
    t.start(clock.ms)
    assert (a.conversions, b.conversions) == (0, 1)
    clock.ms += 750
    assert t.read(clock.ms) == 38.5


def test_ds18b20_no_presence_is_a_driver_error():
    clock, dev, bus, t = ds()
    bus.present = False
    with pytest.raises(DriverError, match="convert failed after 3 attempts.*presence"):
        t.start(clock.ms)
    assert (t.retries_total, t.errors) == (2, 1)


def test_ds18b20_ticks_wrap():
    """ready() compares with ticks_diff, so it works across the tick counter's wrap on a
    board (on CPython ticks do not wrap, and ticks_diff is a plain difference)."""
    clock, dev, bus, t = ds()
    t.start(-10)
    assert not t.ready(700) and t.ready(740)


def test_ds18b20_invalid_settings():
    with pytest.raises(ValueError, match="resolution"):
        DS18B20(FakeOneWire(), resolution=8)
    with pytest.raises(ValueError, match="rom"):
        DS18B20(FakeOneWire(), rom=b"\x28")
