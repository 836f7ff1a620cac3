"""The drivers (and the fakes they are tested against) on real MicroPython 1.27 (WebAssembly
port, through the ``micropython`` fixture in conftest.py): same results as on CPython, and no heap
allocation while the MAX30102 FIFO is drained in steady state (gc.mem_alloc)."""

from __future__ import annotations

import contextlib
import io
import json
import sys

from .conftest import FIRMWARE

# Runs on both interpreters: `fakebus` is wardsim.fakebus, `bedside.drivers` the package.
SCENARIO = r'''
import gc
import json
from array import array
from fakebus import FakeI2C, FakeMAX30102, FakeMAX30205, FakeOneWire, FakeDS18B20
from bedside.drivers import DriverError
from bedside.drivers.max30102 import MAX30102
from bedside.drivers.max30205 import MAX30205
from bedside.drivers.ds18b20 import DS18B20

out = {}
k = [0]


def src(t):
    k[0] += 1
    return 1000 + k[0] - 1, 200000 + k[0] - 1


bus = FakeI2C()
dev = bus.attach(0x57, FakeMAX30102(source=src))
ox = MAX30102(bus)
ox.init(averaging=1)
dev.produce(40)
red = array("l", [0] * 32)
ir = array("l", [0] * 32)
n = ox.read_fifo(red, ir)
out["fifo"] = [n, ox.last_lost, list(red), list(ir)]
out["die"] = ox.die_temp()
bus.fail_next(3)
try:
    ox.read_fifo(red, ir)
except DriverError as e:
    out["i2c_error"] = str(e)
out["counters"] = [ox.retries_total, ox.errors, ox.lost]


class QuietBus:
    """10 samples pending at every poll, allocating nothing itself."""

    def readfrom_mem(self, a, r, n):
        return bytes(n)

    def readfrom_mem_into(self, a, r, buf):
        if r == 4:
            buf[0] = 10
            buf[1] = 0
            buf[2] = 0
        else:
            for i in range(len(buf)):
                buf[i] = 0xFF

    def writeto_mem(self, a, r, b):
        pass


q = MAX30102(QuietBus())
q.set_mode("spo2")
q.read_fifo(red, ir)
if hasattr(gc, "mem_alloc"):
    def drain(times):
        # In a function: a new module-level name would grow the globals dict and count.
        gc.collect()
        gc.disable()
        a0 = gc.mem_alloc()
        for _ in range(times):
            q.read_fifo(red, ir)
        a1 = gc.mem_alloc()
        gc.enable()
        return a1 - a0

    out["heap"] = drain(100)

temps = []
for c in (-40.0, -9.5, 0.0, 36.75, 39.1015625):
    b2 = FakeI2C()
    b2.attach(0x48, FakeMAX30205(temp_c=c))
    t = MAX30205(b2)
    t.init()
    temps.append(t.read())
out["max30205"] = temps

clock = [0]
d = FakeDS18B20(lambda: clock[0], temp_c=-10.125)
s = DS18B20(FakeOneWire([d]))
s.init()
s.start(0)
ready = [s.ready(749), s.ready(750)]
clock[0] = 750
out["ds18b20"] = [ready, s.read(750)]
s.start(750)
clock[0] = 1500
d.corrupt_crc = 3
try:
    s.read(1500)
except DriverError as e:
    out["crc_error"] = str(e)
print("RESULT " + json.dumps(out))
'''


def _script(tmp_path):
    """SCENARIO, preceded by code that writes the drivers and fakebus into MicroPython's
    filesystem (the runner mounts only bedside's top-level modules)."""
    lines = ["import os", "os.mkdir('/lib/bedside/drivers')"]
    for p in sorted((FIRMWARE / "bedside" / "drivers").glob("*.py")):
        lines.append("open('/lib/bedside/drivers/%s', 'w').write(%r)" % (p.name, p.read_text()))
    lines.append("open('/lib/fakebus.py', 'w').write(%r)" % (FIRMWARE / "wardsim" / "fakebus.py").read_text())
    path = tmp_path / "drivers_scenario.py"
    path.write_text("\n".join(lines) + "\n" + SCENARIO)
    return path


def _result(text):
    line = [l for l in text.splitlines() if l.startswith("RESULT ")]
    assert line, text
    return json.loads(line[0][len("RESULT "):])


def test_drivers_agree_with_cpython_and_drain_the_fifo_without_allocating(micropython, tmp_path):
    on_mpy = _result(micropython(_script(tmp_path)))
    import wardsim.fakebus

    saved = sys.modules.get("fakebus")
    sys.modules["fakebus"] = wardsim.fakebus
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(SCENARIO, "drivers_scenario", "exec"), {"__name__": "scenario"})
    finally:
        if saved is None:
            sys.modules.pop("fakebus", None)
        else:
            sys.modules["fakebus"] = saved
    on_cpython = _result(out.getvalue())
    heap = on_mpy.pop("heap")
    assert heap == 0, heap  # 100 FIFO drains of 10 samples: small ints into preallocated arrays
    # OSError reprs differ between the two (OSError(5,) vs OSError(5, ...)): compare up to it
    for key in ("i2c_error", "crc_error"):
        assert on_mpy.pop(key).split(": OSError")[0] == on_cpython.pop(key).split(": OSError")[0]
    assert on_mpy == on_cpython
    assert on_cpython["fifo"][:2] == [32, 8]
    assert on_cpython["ds18b20"] == [[False, True], -10.125]
