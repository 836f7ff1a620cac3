"""Raw fidelity: a simulated patient's PPG goes through the fake MAX30102's registers, the
real driver and the real oximeter, and comes out as the patient's vitals."""

from __future__ import annotations

import asyncio

import pytest

from bedside.drivers.max30102 import MAX30102
from bedside.pulseox import AVERAGING, SAMPLE_RATE, Sensors
from wardsim.fakebus import FakeI2C, FakeMAX30102
from wardsim.rawsim import LiveMAX30102, Waveform


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def run_chain(vitals, seconds=20.0, poll_s=0.1):
    """Drive one bed's sensor chain in simulated time; returns the oximeter's last result."""
    clock = Clock()
    bus = FakeI2C()
    fake = LiveMAX30102(Waveform(vitals, seed=1), clock=clock)
    bus.attach(FakeMAX30102.ADDR, fake)
    sensors = Sensors(MAX30102(bus))
    sensors.max30102.init(sample_rate=SAMPLE_RATE, averaging=AVERAGING)
    for _ in range(int(seconds / poll_s)):  # what Sensors._drain does, without the event loop
        clock.t += poll_s
        n = sensors.max30102.read_fifo(sensors._red, sensors._ir)
        for i in range(n):
            sensors.ox.add(sensors._red[i], sensors._ir[i])
    assert sensors.max30102.lost == 0  # polled often enough: the FIFO never overflowed
    return sensors.ox.result()


@pytest.mark.parametrize("hr,spo2", [(55, 97), (88, 93), (124, 86)])
def test_the_algorithm_reads_the_simulated_patient(hr, spo2):
    r = run_chain(lambda t: {"hr": hr, "spo2": spo2, "pi": 2.5, "probe": "ok", "temp": 36.8})
    assert r["probe"] == "ok" and r["sqi"] >= 0.5
    assert abs(r["hr"] - hr) <= 3 and abs(r["spo2"] - spo2) <= 2


def test_no_finger_reads_probe_off_and_nulls():
    r = run_chain(lambda t: {"hr": None, "spo2": None, "pi": None, "probe": "off", "temp": 36.8}, seconds=6)
    assert r["probe"] == "off" and r["hr"] is None and r["spo2"] is None and r["pi"] is None


def test_a_silent_sensor_is_a_fault_not_a_number():
    async def first_reading():
        s = Sensors(MAX30102(FakeI2C()))  # nothing on the bus: every transfer fails
        try:
            return s.sample(0), s.faults
        finally:
            s.stop()

    r, faults = asyncio.run(first_reading())
    assert faults == 1
    assert r["probe"] == "fault" and r["hr"] is None and r["spo2"] is None and r["temp"] is None


def test_ds18b20_poller_never_blocks_and_returns_the_last_conversion():
    from bedside.drivers.ds18b20 import DS18B20
    from bedside.pulseox import Ds18b20Poller
    from wardsim.fakebus import FakeDS18B20, FakeOneWire

    now = [0]
    sensor = FakeDS18B20(lambda: now[0], temp_c=37.25)
    ds = DS18B20(FakeOneWire([sensor]))
    ds.init()
    poller = Ds18b20Poller(ds, clock=lambda: now[0])
    assert poller.read() is None  # conversion started, nothing finished yet
    now[0] += 500
    assert poller.read() is None  # still converting: no wait, no number
    now[0] += 500
    assert poller.read() == 37.25  # finished; the next conversion starts
    sensor.temp_c = 38.0
    now[0] += 1000
    assert poller.read() == 38.0
