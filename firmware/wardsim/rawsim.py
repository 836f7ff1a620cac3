"""Raw-fidelity simulation (``wardwatch sim --fidelity raw``): a simulated patient's vitals
become a red/IR photoplethysmogram, which enters register-level fake sensors on a fake I2C
bus; the real drivers and ``bedside.ppg`` then measure it, exactly as on a board.

- ``pulse_shape`` / ``Waveform``: the synthetic PPG (the model in ``docs/ppg.md``: light
  falls as arterial blood fills the tissue; the red/IR modulation ratio R comes from the
  firmware's calibration curve, so the SpO2 the patient has is the SpO2 a perfect
  algorithm would read).
- ``LiveMAX30102``: the fake MAX30102 producing samples in real time (wall clock).
- ``sensors_for(patient)``: the ``bedside.pulseox.Sensors`` for one simulated bed.

CPython only; who calls it: ``wardsim.sim`` and tests.
"""

from __future__ import annotations

import math
import random
import time

from bedside.drivers.max30102 import MAX30102
from bedside.drivers.max30205 import MAX30205
from bedside.ppg import r_from_spo2
from bedside.pulseox import Sensors

from .fakebus import FakeI2C, FakeMAX30102, FakeMAX30205

DC_IR = 120_000  # counts of 2**18: a finger on the sensor at 7 mA LED current
DC_RED = 90_000
DC_NO_FINGER = 1_500  # ambient light only


def pulse_shape(ph: float) -> float:
    """Beat shape over one cycle (phase 0..1): systolic peak near 0.2, dicrotic wave."""
    s = math.exp(-(((ph - 0.18) / 0.08) ** 2)) + 0.35 * math.exp(-(((ph - 0.45) / 0.09) ** 2))
    s += math.exp(-(((ph - 1.18) / 0.08) ** 2))  # the next systole's upstroke wraps around
    return s / 1.02


class Waveform:
    """``source(t_s) -> (red, ir)`` counts for a patient whose vitals come from
    ``vitals(t_s)`` (a ``bedside.simvitals.Patient.sample``). Calls must come in time order."""

    def __init__(self, vitals, seed: int = 0, noise: float = 15.0, wander: float = 0.01):
        self.vitals = vitals
        self.rng = random.Random(seed)
        self.noise = noise
        self.wander = wander
        self._phase = self.rng.random()
        self._t = 0.0
        self._v = None
        self._v_at = -1.0

    def __call__(self, t_s: float) -> tuple[int, int]:
        if self._v is None or t_s - self._v_at >= 0.25:  # vitals change slowly
            self._v = self.vitals(t_s)
            self._v_at = t_s
        v, rng = self._v, self.rng
        dt, self._t = max(0.0, t_s - self._t), t_s
        if v["probe"] != "ok" or v["hr"] is None:
            return int(DC_NO_FINGER + rng.gauss(0, self.noise)), int(DC_NO_FINGER + rng.gauss(0, self.noise))
        self._phase = (self._phase + dt * v["hr"] / 60.0) % 1.0
        a = (v["pi"] or 2.0) / 100.0
        r = r_from_spo2(v["spo2"])
        p = pulse_shape(self._phase)
        w = 1.0 + self.wander * math.sin(2 * math.pi * t_s / 4.0)  # breathing
        ir = DC_IR * w * (1 - a * p) + rng.gauss(0, self.noise)
        red = DC_RED * w * (1 - r * a * p) + rng.gauss(0, self.noise)
        return int(red), int(ir)


class LiveMAX30102(FakeMAX30102):
    """A fake MAX30102 that samples in real time: every register access first produces the
    samples the part would have taken since the last one."""

    def __init__(self, source, clock=time.monotonic):
        FakeMAX30102.__init__(self, source=source)
        self._clock = clock
        self._last = clock()

    def _catch_up(self) -> None:
        now = self._clock()
        self.advance_ms((now - self._last) * 1000.0)
        self._last = now

    def read(self, reg, n):
        self._catch_up()
        return FakeMAX30102.read(self, reg, n)


class LiveMAX30205(FakeMAX30205):
    """A fake MAX30205 that sees the patient's current temperature."""

    def __init__(self, temperature):
        FakeMAX30205.__init__(self)
        self._temperature = temperature
        self._t0 = time.monotonic()

    def read(self, reg, n):
        t = self._temperature(time.monotonic() - self._t0)
        if t is not None:
            self.temp_c = t
        return FakeMAX30205.read(self, reg, n)


def sensors_for(patient, seed: int = 0) -> Sensors:
    """The real sensor chain for one simulated bed, on its own fake I2C bus."""
    bus = FakeI2C()
    bus.attach(FakeMAX30102.ADDR, LiveMAX30102(Waveform(patient.sample, seed)))
    bus.attach(FakeMAX30205.ADDR, LiveMAX30205(lambda t: patient.sample(t)["temp"]))
    thermometer = MAX30205(bus)
    thermometer.init()
    sensors = Sensors(MAX30102(bus), thermometer)
    # Scenario events (power off, network outage) still come from the patient's script.
    sensors.events = getattr(patient, "events", None)
    return sensors
