"""MAX30102 driver against the register-level fake: configuration bit patterns, FIFO order,
18-bit mask, 5-bit pointer wrap, overflow counting, die temperature, I2C retries."""

import errno
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bedside.drivers import DriverError
from bedside.drivers import max30102 as mx
from bedside.drivers.max30102 import MAX30102
from wardsim.fakebus import FakeI2C, FakeMAX30102

ADDR = 0x57


def make(source=None, **fake_kw):
    bus = FakeI2C()
    values = iter(source) if source is not None else None
    src = (lambda t: next(values)) if values is not None else None
    dev = bus.attach(ADDR, FakeMAX30102(source=src, **fake_kw) if src else FakeMAX30102(**fake_kw))
    return bus, dev, MAX30102(bus)


def counting(n0=0):
    """A source whose red is 1000 + k and IR 200000 + k for the k-th sample."""
    k = [n0]

    def src(t):
        k[0] += 1
        return 1000 + k[0] - 1, 200000 + k[0] - 1

    return src


def bufs(n=32):
    return array("l", [0] * n), array("l", [0] * n)


def test_init_writes_the_documented_registers():
    bus, dev, ox = make()
    ox.init(sample_rate=100, pulse_width=411, adc_range=4096, averaging=4, red_ma=7.0, ir_ma=7.0)
    w = bus.writes(ADDR)
    assert w[0x09] == 0x03  # SpO2 mode, not shut down
    assert w[0x08] == 0b010_0_0000  # SMP_AVE=4, rollover off
    assert w[0x0A] == 0b0_01_001_11  # 4096 nA, 100 sps, 411 us
    assert (w[0x0C], w[0x0D]) == (35, 35)  # 7.0 mA / 0.2
    # reset came first, the FIFO was emptied, and the part now samples
    first_writes = [(reg, data[0]) for op, a, reg, data in bus.log if op == "w"]
    assert first_writes[0] == (0x09, 0x40)
    assert dev.sampling() and dev.channels == 2


# (setting, value, register, mask, expected bits)
CONFIG = [
    ("sample_rate", 50, 0x0A, 0x1C, 0 << 2),
    ("sample_rate", 100, 0x0A, 0x1C, 1 << 2),
    ("sample_rate", 200, 0x0A, 0x1C, 2 << 2),
    ("sample_rate", 400, 0x0A, 0x1C, 3 << 2),
    ("sample_rate", 800, 0x0A, 0x1C, 4 << 2),
    ("sample_rate", 1000, 0x0A, 0x1C, 5 << 2),
    ("sample_rate", 1600, 0x0A, 0x1C, 6 << 2),
    ("sample_rate", 3200, 0x0A, 0x1C, 7 << 2),
    ("adc_range", 2048, 0x0A, 0x60, 0 << 5),
    ("adc_range", 4096, 0x0A, 0x60, 1 << 5),
    ("adc_range", 8192, 0x0A, 0x60, 2 << 5),
    ("adc_range", 16384, 0x0A, 0x60, 3 << 5),
    ("pulse_width", 69, 0x0A, 0x03, 0),
    ("pulse_width", 118, 0x0A, 0x03, 1),
    ("pulse_width", 215, 0x0A, 0x03, 2),
    ("pulse_width", 411, 0x0A, 0x03, 3),
    ("averaging", 1, 0x08, 0xE0, 0 << 5),
    ("averaging", 2, 0x08, 0xE0, 1 << 5),
    ("averaging", 4, 0x08, 0xE0, 2 << 5),
    ("averaging", 8, 0x08, 0xE0, 3 << 5),
    ("averaging", 16, 0x08, 0xE0, 4 << 5),
    ("averaging", 32, 0x08, 0xE0, 5 << 5),
    ("red_ma", 0, 0x0C, 0xFF, 0x00),
    ("red_ma", 0.2, 0x0C, 0xFF, 0x01),
    ("red_ma", 6.4, 0x0C, 0xFF, 0x20),
    ("red_ma", 50.8, 0x0C, 0xFF, 0xFE),
    ("red_ma", 51.0, 0x0C, 0xFF, 0xFF),
    ("ir_ma", 0.3, 0x0D, 0xFF, 0x02),  # nearest step (0.4 mA), not truncated
    ("ir_ma", 24.9, 0x0D, 0xFF, 0x7D),
    ("mode", "hr", 0x09, 0xFF, 0x02),
    ("mode", "spo2", 0x09, 0xFF, 0x03),
]


@pytest.mark.parametrize("name,value,reg,mask,bits", CONFIG)
def test_config_bit_patterns(name, value, reg, mask, bits):
    bus, dev, ox = make()
    # 50 sps suits every pulse width; every rate is valid at 69 us in HR mode
    kw = {"sample_rate": 50, "pulse_width": 69}
    kw[name] = value
    if name == "sample_rate":
        kw["mode"] = "hr"
    ox.init(**kw)
    assert bus.writes(ADDR)[reg] & mask == bits
    assert dev.regs[reg] & mask == bits


BAD = [
    ("sample_rate", 150),
    ("sample_rate", 0),
    ("adc_range", 1000),
    ("pulse_width", 100),
    ("averaging", 3),
    ("averaging", 64),
    ("red_ma", -0.2),
    ("red_ma", 51.2),
    ("ir_ma", 60),
    ("mode", "multi"),
]


@pytest.mark.parametrize("name,value", BAD)
def test_invalid_settings_raise_naming_the_setting_and_touch_nothing(name, value):
    bus, dev, ox = make()
    with pytest.raises(ValueError, match=name):
        ox.init(**{name: value})
    assert bus.transfers == 0


@pytest.mark.parametrize("rate,width", [(800, 411), (1000, 215), (1600, 118), (3200, 69)])
def test_spo2_mode_refuses_a_rate_too_fast_for_the_pulse_width(rate, width):
    with pytest.raises(ValueError, match="sample_rate"):
        make()[2].init(sample_rate=rate, pulse_width=width)


def test_wrong_part_id_is_a_driver_error():
    bus, dev, ox = make(part_id=0x11)
    with pytest.raises(DriverError, match="part id 0x11"):
        ox.init()


def test_reset_waits_for_the_bit_to_clear_and_fails_when_it_never_does():
    bus, dev, ox = make(reset_reads=3)
    ox.reset()
    assert dev.regs[0x09] == 0
    bus, dev, ox = make(reset_reads=None)
    with pytest.raises(DriverError, match="RESET"):
        ox.reset()


def test_fifo_returns_samples_in_order_masked_to_18_bits():
    bus, dev, ox = make()
    dev.source = counting()
    ox.init(averaging=1)
    dev.produce(10)
    red, ir = bufs()
    assert ox.read_fifo(red, ir) == 10
    assert list(red[:10]) == [1000 + k for k in range(10)]
    assert list(ir[:10]) == [200000 + k for k in range(10)]
    assert ox.last_lost == 0 and ox.lost == 0
    assert ox.read_fifo(red, ir) == 0  # drained


def test_mask_keeps_exactly_18_bits():
    bus, dev, ox = make(source=[(0x3FFFF, 0), (0x20001, 0x1FFFF)] + [(0, 0)] * 10)
    ox.init()
    dev.produce(2)
    red, ir = bufs()
    assert ox.read_fifo(red, ir) == 2
    assert list(red[:2]) == [0x3FFFF, 0x20001] and list(ir[:2]) == [0, 0x1FFFF]


def test_pointers_wrap_around_32():
    bus, dev, ox = make()
    dev.source = counting()
    ox.init()
    red, ir = bufs(32)
    got = []
    for burst in (20, 20, 20, 7, 31):  # the 5-bit pointers wrap several times
        dev.produce(burst)
        n = ox.read_fifo(red, ir)
        assert n == burst
        got += list(red[:n])
    assert got == [1000 + k for k in range(98)]
    assert ox.lost == 0 and dev.rd == 98 % 32


def test_a_small_buffer_takes_what_fits_and_leaves_the_rest():
    bus, dev, ox = make()
    dev.source = counting()
    ox.init()
    dev.produce(12)
    red, ir = bufs(5)
    assert ox.read_fifo(red, ir) == 5
    assert ox.read_fifo(red, ir, start=2) == 3
    assert list(red) == [1000, 1001, 1005, 1006, 1007]
    assert ox.available() == (4, 0)


@pytest.mark.parametrize("produced,lost", [(32, 0), (33, 1), (40, 8), (63, 31), (100, 31)])
def test_overflow_is_counted_and_reported(produced, lost):
    bus, dev, ox = make()
    dev.source = counting()
    ox.init()
    dev.produce(produced)
    red, ir = bufs()
    n = ox.read_fifo(red, ir)
    if lost == 0:
        # exactly 32 unread samples: the pointers are equal, so the part reads as empty
        # until the next sample is lost; nothing is lost silently, the samples wait.
        assert n == 0 and ox.last_lost == 0
        dev.produce(1)
        n = ox.read_fifo(red, ir)
        assert (n, ox.last_lost) == (32, 1)
    else:
        assert (n, ox.last_lost, ox.lost) == (32, lost, lost)
    # the FIFO kept the oldest 32 samples
    assert list(red) == [1000 + k for k in range(32)]
    # the overflow counter was cleared by the read: the next read reports no loss
    dev.produce(3)
    assert ox.read_fifo(red, ir) == 3 and ox.last_lost == 0
    assert red[0] == 1000 + dev.produced - 3


def test_hr_mode_reads_red_only():
    bus, dev, ox = make()
    dev.source = counting()
    ox.init(mode="hr")
    dev.produce(4)
    red = array("l", [0] * 8)
    assert ox.read_fifo(red) == 4
    assert list(red[:4]) == [1000, 1001, 1002, 1003]


def test_swapped_leds_are_swapped_back():
    bus = FakeI2C()
    dev = bus.attach(ADDR, FakeMAX30102(source=lambda t: (111, 222)))
    ox = MAX30102(bus, swap_leds=True)
    ox.init(red_ma=10.0, ir_ma=2.0)
    assert (dev.regs[0x0C], dev.regs[0x0D]) == (10, 50)
    dev.produce(1)
    red, ir = bufs()
    ox.read_fifo(red, ir)
    assert (red[0], ir[0]) == (222, 111)


def test_advance_produces_at_the_effective_rate():
    bus, dev, ox = make()
    ox.init(sample_rate=400, averaging=4)  # 100 samples/s into the FIFO
    dev.advance_ms(250)
    red, ir = bufs()
    assert ox.read_fifo(red, ir) == 25


def test_shutdown_stops_sampling_and_wakeup_resumes():
    bus, dev, ox = make()
    ox.init()
    ox.shutdown()
    assert dev.regs[0x09] == 0x83 and not dev.sampling()
    assert dev.produce(5) == 0 and dev.count == 0
    ox.wakeup()
    assert dev.regs[0x09] == 0x03
    dev.produce(5)
    assert ox.read_fifo(*bufs()) == 5


def test_steady_state_read_allocates_no_new_buffers():
    """The burst is read into the driver's own buffer through a prebuilt view."""
    bus, dev, ox = make()
    ox.init()
    seen = []
    real = bus.readfrom_mem_into
    bus.readfrom_mem_into = lambda a, r, b: (seen.append((r, b)), real(a, r, b))[1]
    dev.produce(7)
    ox.read_fifo(*bufs())
    (reg, view), = [(r, b) for r, b in seen if r == 0x07]
    assert isinstance(view, memoryview) and view.obj is ox._raw and len(view) == 42


# (die temperature °C, TINT, TFRAC)
DIE_TEMPS = [(25.0, 0x19, 0), (31.25, 0x1F, 4), (-0.5, 0xFF, 8), (-40.0, 0xD8, 0), (85.9375, 0x55, 15), (0.0625, 0, 1)]


@pytest.mark.parametrize("celsius,tint,tfrac", DIE_TEMPS)
def test_die_temperature(celsius, tint, tfrac):
    bus, dev, ox = make(die_temp_c=celsius, temp_reads=2)
    ox.start_temp()
    assert not ox.temp_ready()
    assert ox.die_temp() == celsius
    assert (dev.regs[0x1F], dev.regs[0x20]) == (tint, tfrac)


def test_i2c_errors_are_retried_and_counted():
    bus, dev, ox = make()
    ox.init()
    dev.produce(3)
    bus.fail_next(2)
    assert ox.read_fifo(*bufs()) == 3
    assert ox.retries_total == 2 and ox.errors == 0


def test_persistent_i2c_errors_surface_with_the_register_name():
    bus, dev, ox = make()
    ox.init()
    bus.fail_next(3)  # first try + 2 retries
    with pytest.raises(DriverError, match=r"FIFO_WR_PTR \(0x04\).*3 attempts"):
        ox.read_fifo(*bufs())
    assert ox.retries_total == 2 and ox.errors == 1
    bus.fail_next(10, errno.ETIMEDOUT)
    with pytest.raises(DriverError, match="write MODE_CONFIG"):
        ox.shutdown()
    assert ox.errors == 2


def test_missing_device_is_a_driver_error_naming_part_id():
    ox = MAX30102(FakeI2C(), retries=0)
    with pytest.raises(DriverError, match="PART_ID"):
        ox.init()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 45), st.integers(1, 32)), min_size=1, max_size=20))
def test_fifo_never_loses_a_sample_silently(steps):
    """Any interleaving of sample bursts and reads, with any room in the buffer: samples
    come out in order without repeats, every sample is either read, still in the FIFO or
    dropped, and the driver's loss count equals the fake's drops (less those beyond the
    saturated OVF_COUNTER, which the part cannot report)."""
    bus, dev, ox = make()
    dev.source = counting()
    ox.init()
    red, ir = bufs(32)
    got = []
    for burst, room in steps:
        dev.produce(burst)
        start = 32 - room
        n = ox.read_fifo(red, ir, start=start)
        assert list(ir[start:start + n]) == [v + 199000 for v in red[start:start + n]]
        got += list(red[start:start + n])
    assert got == sorted(set(got))
    assert len(got) + dev.count + dev.dropped == dev.produced
    assert ox.lost == dev.dropped - dev.unreported


def test_fake_bus_log_stays_bounded_for_long_simulator_runs():
    bus = FakeI2C(log_limit=100)
    dev = bus.attach(ADDR, FakeMAX30102())
    ox = MAX30102(bus)
    ox.init()
    for _ in range(200):
        dev.produce(1)
        ox.read_fifo(*bufs(4))
    assert 50 <= len(bus.log) <= 100
    assert bus.log[-1][2] == 0x07  # the newest transfers are kept


def test_rate_width_pairs_are_checked_against_the_current_mode():
    bus, dev, ox = make()
    ox.init(mode="hr", sample_rate=50, pulse_width=69)
    ox.set_spo2_config(3200, 69, 4096)  # fine in HR mode
    assert dev.regs[0x0A] == 0b0_01_111_00
    ox.set_mode("spo2")
    with pytest.raises(ValueError, match="sample_rate"):
        ox.set_spo2_config(3200, 69, 4096)
