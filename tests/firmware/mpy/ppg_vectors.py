# bedside.ppg on a fixed synthetic vector; run on MicroPython and on CPython by
# tests/firmware/test_micropython.py, which compares the printed results (floats within a
# tolerance) and, on MicroPython, checks the heap figures. MicroPython syntax.
#
# The vector is integer-only (a quadratic upstroke, a linear fall, LCG noise) so that both
# interpreters feed exactly the same samples: a libm difference in sin/exp could move a
# sample across an integer boundary.
import gc
import json

from bedside.ppg import Oximeter

FS = 100
PERIOD = 75  # samples: 80 bpm
RISE = 15


def vector(seconds, seed):
    red = []
    ir = []
    x = seed
    for i in range(seconds * FS):
        k = i % PERIOD
        if k < RISE:
            p = 1000 * k * k // (RISE * RISE)
        else:
            p = 1000 * (PERIOD - k) // (PERIOD - RISE)
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        n1 = (x >> 16) % 61 - 30
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        n2 = (x >> 16) % 61 - 30
        wander = (i % 500) * 4 if (i // 500) % 2 == 0 else (500 - i % 500) * 4  # 0.2 Hz triangle
        ir.append(120000 + wander - 2400 * p // 1000 + n1)  # 2 % modulation
        red.append(90000 + wander * 3 // 4 - 1296 * p // 1000 + n2)  # R = 0.72: SpO2 92
    return red, ir


res = {}
red, ir = vector(40, 7)
ox = Oximeter(FS)
outs = []
for i in range(len(ir)):
    if ox.add(red[i], ir[i]):
        outs.append(ox.result())
res["outputs"] = outs[-25:]
sw = Oximeter(FS, swap_red_ir=True)
last = None
for i in range(len(ir)):
    if sw.add(ir[i], red[i]):
        last = sw.result()
res["swapped"] = last
off = Oximeter(FS)
for i in range(300):
    off.add(800, 1000)
res["off"] = off.result()

# Heap: after warm-up, one cycle of 100 samples and one output. gc.mem_alloc is
# MicroPython's; CPython has no equivalent and skips this part.
if hasattr(gc, "mem_alloc"):
    ox = Oximeter(FS)
    for i in range(20 * FS):
        ox.add(red[i], ir[i])
    ox.result()
    r2 = red[20 * FS:20 * FS + 100]
    i2 = ir[20 * FS:20 * FS + 100]
    rng = range(100)
    gc.collect()
    m0 = gc.mem_alloc()
    for i in rng:
        ox.add(r2[i], i2[i])
    m1 = gc.mem_alloc()
    out = ox.result()
    m2 = gc.mem_alloc()
    res["heap"] = {"samples": 100, "samples_bytes": m1 - m0, "result_bytes": m2 - m1,
                   "hr": out["hr"] is not None}
print("RESULT " + json.dumps(res))
