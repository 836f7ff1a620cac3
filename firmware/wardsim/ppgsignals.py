"""Inputs with a known truth for the pulse oximeter (``bedside.ppg``), shared by
tests/firmware/test_ppg.py and bench/ppg_accuracy.py (``make bench-ppg``). CPython only.

- ``synth``: synthetic red/IR photoplethysmograms.
- ``bidmc``: the BIDMC recording (``bench/data/``: PLETH as IR counts, ECG lead II), with
  ``ecg_rpeaks`` and ``reference_hr`` for a pulse rate from the ECG.

Synthetic signals:

The light reaching the photodiode falls as arterial blood fills the tissue at each beat:
``ir = DC_ir * (1 + wander) * (1 - a * pulse)`` and ``red = DC_red * (1 + wander) *
(1 - R * a * pulse)``, where ``pulse`` is a 0..1 beat shape (systolic wave plus a dicrotic
wave), ``a`` = PI / 100 and R is the ratio of ratios from the inverse of the firmware's
calibration curve, so the true SpO2 is known exactly. The rate follows ``hr`` with
respiratory sinus arrhythmia. Added: Gaussian noise (counts), slow multiplicative baseline
wander, and motion bursts (large 0.7..3 Hz artefacts, different on the two channels).
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

from .rawsim import pulse_shape  # the simulator's beat shape: one model for both

BIDMC_FILE = "bidmc_01_Signals.csv"  # in bench/data/, with its attribution
BIDMC_FS = 125

FULL_SCALE = (1 << 18) - 1


def synth(fs, seconds, hr, spo2, pi=2.0, dc_ir=120000, dc_red=90000, noise=15.0, wander=0.01,
          motion=(), rsa=1.5, seed=0, r=None, second=None, irregular=0.0, motion_random=(),
          pressure=()):
    """Return ``(red, ir, beats)``: two lists of int counts and the list of true systolic peak
    times (s). ``motion``: [(start_s, duration_s)] periodic bursts (one 0.7..3 Hz sine each,
    2..6x the pulse). ``r`` overrides the ratio of ratios.

    Options beyond the defaults (the defaults give bit-identical signals to earlier versions;
    their random draws come from a second generator):

    - ``second=(delay_s, height)``: a diastolic (reflected) wave ``delay_s`` after the systolic
      peak at ``height`` (0..1) of it, replacing the default dicrotic wave. It is 1.3x as wide
      as the systolic wave (a reflected wave is dispersed); its delay is capped at half the
      beat interval (at fast rates the reflection merges into the next beat's foot).
    - ``irregular``: each beat interval is the nominal one times 1 + U(-irregular, +irregular)
      (0.25: atrial-fibrillation-like).
    - ``motion_random``: [(start_s, duration_s)] bursts of mixed movement: five sines of random
      frequency in 0.3..4 Hz, random weights and phases (different on red and IR), 2..6x the
      pulse in total, under a smooth envelope.
    - ``pressure``: [(t_s, dc_gain, ac_gain)]: from ``t_s`` on the DC of both channels is
      multiplied by ``dc_gain`` and the pulse modulation by ``ac_gain`` (contact pressure).
    """
    from bedside.ppg import r_from_spo2

    rng = random.Random(seed)
    xr = random.Random(seed * 1000003 + 7)  # the extra options' draws: the defaults stay as they were
    if r is None:
        r = r_from_spo2(spo2)
    a = pi / 100.0
    bursts = []
    for t0, dur in motion:
        bursts.append((t0, t0 + dur, rng.uniform(0.7, 3.0), rng.uniform(2, 6) * a,
                       rng.uniform(0.4, 1.6), rng.uniform(0, 6.28)))
    rbursts = []
    for t0, dur in motion_random:
        ws = [xr.uniform(0.2, 1.0) for _ in range(5)]
        tot = sum(ws)
        comps = [(xr.uniform(0.3, 4.0), w / tot, xr.uniform(0, 6.28), xr.uniform(0.4, 1.6),
                  xr.uniform(-0.6, 0.6)) for w in ws]
        rbursts.append((t0, t0 + dur, xr.uniform(2, 6) * a, comps))
    steps = sorted(pressure)
    wf1, wf2 = rng.uniform(0.15, 0.3), rng.uniform(0.02, 0.06)
    red, ir, beats = [], [], []
    phase = rng.random()
    dt = 1.0 / fs
    factor = 1.0 + xr.uniform(-irregular, irregular) if irregular else 1.0
    dcg = acg = 1.0
    si = 0
    for i in range(int(seconds * fs)):
        t = i * dt
        rate = hr + rsa * math.sin(2 * math.pi * t / 4.0)
        if irregular:
            rate /= factor
        prev = phase
        phase += rate / 60.0 * dt
        if int(prev - 0.18) != int(phase - 0.18) and phase > 0.18:
            beats.append(t)
        if irregular and int(prev) != int(phase):
            factor = 1.0 + xr.uniform(-irregular, irregular)  # the next cycle's interval
        if second is None:
            p = pulse_shape(phase % 1.0)
        else:
            p = _two_waves(phase % 1.0, second[0] * rate / 60.0, second[1])
        while si < len(steps) and steps[si][0] <= t:
            dcg, acg = steps[si][1], steps[si][2]
            si += 1
        w = wander * (math.sin(2 * math.pi * wf1 * t) + 0.7 * math.sin(2 * math.pi * wf2 * t + 1))
        mi = mr = 0.0
        for b0, b1, f, amp, rr, ph0 in bursts:
            if b0 <= t < b1:
                env = math.sin(math.pi * (t - b0) / (b1 - b0))
                mi += amp * env * math.sin(2 * math.pi * f * t + ph0)
                mr += amp * rr * env * math.sin(2 * math.pi * f * 1.13 * t + ph0)
        for b0, b1, amp, comps in rbursts:
            if b0 <= t < b1:
                env = amp * math.sin(math.pi * (t - b0) / (b1 - b0)) ** 0.5
                for f, wt, ph0, rr, dph in comps:
                    mi += env * wt * math.sin(2 * math.pi * f * t + ph0)
                    mr += env * wt * rr * math.sin(2 * math.pi * f * t + ph0 + dph)
        if si:
            vi = dc_ir * dcg * (1 + w + mi) * (1 - acg * a * p) + rng.gauss(0, noise)
            vr = dc_red * dcg * (1 + w + mr) * (1 - r * acg * a * p) + rng.gauss(0, noise)
        else:
            vi = dc_ir * (1 + w + mi) * (1 - a * p) + rng.gauss(0, noise)
            vr = dc_red * (1 + w + mr) * (1 - r * a * p) + rng.gauss(0, noise)
        ir.append(min(FULL_SCALE, max(0, int(vi))))
        red.append(min(FULL_SCALE, max(0, int(vr))))
    return red, ir, beats


def _two_waves(ph, dphi, h):
    """Beat shape (phase 0..1) with a systolic peak at 0.18 and a second wave ``dphi`` (phase)
    later at relative height ``h``, 1.3x as wide; ``dphi`` capped at 0.5."""
    dphi = min(dphi, 0.5)
    s = math.exp(-(((ph - 0.18) / 0.08) ** 2)) + math.exp(-(((ph - 1.18) / 0.08) ** 2))
    s += h * math.exp(-(((ph - 0.18 - dphi) / 0.104) ** 2))
    return s


def mean_rate(beats, t, span=8.0):
    """Reference pulse rate (bpm) at ``t`` s as a mean: 60 * (k - 1) / (last - first) over the
    ``k`` true beats in the last ``span`` s up to ``t`` (an irregular rhythm has no single
    interval; this is the rate a counter of beats would give). None with fewer than 3 beats."""
    sel = [b for b in beats if t - span <= b <= t]
    if len(sel) < 3:
        return None
    return 60.0 * (len(sel) - 1) / (sel[-1] - sel[0])


def run(ox, red, ir):
    """Feed an ``Oximeter``; return the list of ``(t_s, result)`` once per second."""
    out = []
    for i in range(len(ir)):
        if ox.add(red[i], ir[i]):
            out.append(((i + 1) / ox.fs, ox.result()))
    return out


def bidmc(path: str | Path, dc=120000, pi=2.0):
    """``(red, ir, ecg)`` from the BIDMC file: PLETH (normalised 0..1, larger = more blood)
    as raw sensor counts ``dc * (1 - pi/100 * pleth)`` (light falls as blood rises), the same
    for red (heart rate only), and ECG lead II as floats. 125 Hz."""
    ir, ecg = [], []
    with open(path, newline="") as f:
        rows = csv.reader(f)
        head = [h.strip() for h in next(rows)]
        ip, ie = head.index("PLETH"), head.index("II")
        for row in rows:
            ir.append(int(dc * (1 - pi / 100.0 * float(row[ip]))))
            ecg.append(float(row[ie]))
    return list(ir), ir, ecg


def _biquad(x, b, a):
    b0, b1, b2 = b
    _, a1, a2 = a
    y = []
    x1 = x2 = y1 = y2 = 0.0
    for v in x:
        o = b0 * v + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        x2, x1, y2, y1 = x1, v, y1, o
        y.append(o)
    return y


def _rbj(kind, fc, fs, q=0.7071):
    w = 2 * math.pi * fc / fs
    al = math.sin(w) / (2 * q)
    c = math.cos(w)
    if kind == "lp":
        b = ((1 - c) / 2, 1 - c, (1 - c) / 2)
    else:
        b = ((1 + c) / 2, -(1 + c), (1 + c) / 2)
    a0 = 1 + al
    return tuple(v / a0 for v in b), (1.0, -2 * c / a0, (1 - al) / a0)


def ecg_rpeaks(ecg, fs=BIDMC_FS):
    """R-peak times (s) in an ECG lead: band-pass 5..20 Hz (Butterworth biquads, forward and
    backward so peaks do not shift), squared, then local maxima above 30 % of the running
    2-s maximum with a 0.25 s refractory period; each peak is refined to the largest
    |filtered| sample within 50 ms."""
    y = ecg
    for kind, fc in (("hp", 5.0), ("lp", 20.0)):
        b, a = _rbj(kind, fc, fs)
        y = _biquad(y, b, a)
        y = _biquad(y[::-1], b, a)[::-1]
    e = [v * v for v in y]
    n = len(e)
    win = 2 * fs
    peaks = []
    refr = int(0.25 * fs)
    i = 1
    while i < n - 1:
        lo, hi = max(0, i - win // 2), min(n, i + win // 2)
        if e[i] >= e[i - 1] and e[i] > e[i + 1] and e[i] > 0.3 * max(e[lo:hi]):
            if peaks and i - peaks[-1] < refr:
                if e[i] > e[peaks[-1]]:
                    peaks[-1] = i
            else:
                peaks.append(i)
        i += 1
    return [p / fs for p in peaks]


def reference_hr(beats, t, span=8.0):
    """Reference pulse rate (bpm) at time ``t`` s: 60 / median of the beat intervals whose
    beats lie in the last ``span`` s up to ``t`` (the device reports the median of its last
    few beats, so the reference covers the same stretch). None with fewer than 3 intervals."""
    sel = [b for b in beats if t - span <= b <= t]
    iv = sorted(sel[i + 1] - sel[i] for i in range(len(sel) - 1))
    if len(iv) < 3:
        return None
    m = len(iv)
    med = iv[m // 2] if m % 2 else (iv[m // 2 - 1] + iv[m // 2]) / 2
    return 60.0 / med
