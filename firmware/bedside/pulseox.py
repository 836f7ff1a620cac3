"""Real sensors for the app: MAX30102 FIFO -> ``bedside.ppg.Oximeter``, plus a body
temperature sensor. The same object runs on a board (real I2C) and in the host simulator
with ``--fidelity raw`` (a register-level fake MAX30102 fed a synthetic waveform), so the
simulator exercises the driver and the algorithm the ward will run.

``Sensors.sample(t_s)`` is what ``bedside.app`` calls once per reading; it returns the
dict the reading encoder takes: ``{hr, spo2, temp, pi, sqi, probe}``. A drain task started
on the first call empties the FIFO every ``poll_ms`` (the 32-sample FIFO lasts 0.64 s at 50
samples/s, so 100 ms leaves a wide margin) into the oximeter. When the MAX30102 stops
answering the probe reads ``fault`` and every value is null.
"""

import asyncio

from .clock import sleep_ms, ticks_ms
from .drivers import DriverError
from .ppg import Oximeter

SAMPLE_RATE = 200  # sps at the ADC ...
AVERAGING = 4  # ... averaged 4:1 on the chip: 50 samples/s reach the oximeter
FS = SAMPLE_RATE // AVERAGING
_FAULT = {"hr": None, "spo2": None, "pi": None, "sqi": 0.0, "probe": "fault"}


class Sensors:
    """``oximeter``: a ``drivers.max30102.MAX30102``; ``thermometer``: an object whose
    ``read()`` returns °C or None (MAX30205, or DS18B20 through ``Ds18b20Poller``), or None."""

    def __init__(self, oximeter, thermometer=None, poll_ms=100, red_ma=7.0, ir_ma=7.0):
        self.max30102 = oximeter
        self.thermometer = thermometer
        self.poll_ms = poll_ms
        self.ox = Oximeter(FS)
        self._red = [0] * 32
        self._ir = [0] * 32
        self._leds = (red_ma, ir_ma)
        self._task = None
        self._fault = False
        self.faults = 0
        self.temp = None

    def start(self):
        """Configure the MAX30102 and start draining it (called on the first sample)."""
        try:
            self.max30102.init(sample_rate=SAMPLE_RATE, averaging=AVERAGING,
                               red_ma=self._leds[0], ir_ma=self._leds[1])
            self._fault = False
        except DriverError:
            self._fault = True
            self.faults += 1
        self._task = asyncio.create_task(self._drain())

    async def _drain(self):
        red, ir, ox = self._red, self._ir, self.ox
        while True:
            await sleep_ms(self.poll_ms)
            try:
                if self._fault:  # try to bring the part back
                    self.max30102.init(sample_rate=SAMPLE_RATE, averaging=AVERAGING,
                                       red_ma=self._leds[0], ir_ma=self._leds[1])
                    ox.reset()
                    self._fault = False
                n = self.max30102.read_fifo(red, ir)
            except DriverError:
                self._fault = True
                self.faults += 1
                continue
            for i in range(n):
                ox.add(red[i], ir[i])

    def _read_temp(self):
        if self.thermometer is None:
            return None
        try:
            t = self.thermometer.read()
        except (DriverError, RuntimeError):
            return None
        # A body-temperature reading outside 25..45 °C is a detached probe, not a patient.
        if t is None or not 25.0 <= t <= 45.0:
            return None
        return round(t, 1)

    def sample(self, t_s):
        """The vitals now (``t_s`` is unused: the hardware keeps its own time)."""
        if self._task is None:
            self.start()
        r = dict(_FAULT) if self._fault else self.ox.result()
        r["temp"] = self._read_temp()
        return r

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None


class Ds18b20Poller:
    """Gives a ``drivers.ds18b20.DS18B20`` the ``read()`` that ``Sensors`` polls once a
    second: it returns the last finished conversion (None until the first) and starts the
    next, so the 750 ms conversion never blocks the event loop."""

    def __init__(self, ds18b20, clock=ticks_ms):
        self.ds = ds18b20
        self._clock = clock
        self._last = None
        self._busy = False

    def read(self):
        now = self._clock()
        try:
            if self._busy and self.ds.ready(now):
                self._busy = False
                self._last = self.ds.read(now)
            if not self._busy:
                self.ds.start(now)
                self._busy = True
        except Exception:
            self._busy = False  # start afresh next time
            self._last = None
            raise
        return self._last
