"""Accuracy of the bedside pulse oximeter (``firmware/bedside/ppg.py``): ``make bench-ppg``.

Progress goes to stderr; the last stdout line is one JSON object (see docs/ppg.md):

- Synthetic red/IR (firmware/wardsim/ppgsignals.py: known rate, R from the inverse of the
  calibration curve, baseline wander, sensor noise, one motion burst per record) over a
  grid of HR 40..180 bpm x SpO2 80..100 % x perfusion index, at 50 and 100 Hz, 90 s each.
  ``hr_mae_synthetic``: mean |hr - truth| over the 1-s outputs that report a rate (truth:
  60 / median of the true beat intervals of the last 8 s); ``spo2_arms_synthetic``: the
  root mean square of (spo2 - truth) over the outputs that report SpO2 (the FDA's A_rms);
  ``coverage_synthetic`` / ``spo2_coverage_synthetic``: share of outputs after the first
  12 s with a value.
- Stress (reported, no target): wander twice the pulse amplitude, HR 40..180, PI 0.7 and
  2 %, 100 Hz: ``hr_mae_wander2x``, ``hr_max_err_wander2x``, ``coverage_wander2x``.
- BIDMC subject 01 (bench/data, 8 min at 125 Hz): PLETH as IR counts (the same for red),
  against the ECG: R-peaks of lead II (band-pass 5..20 Hz, peak detection), reference rate
  per 1-s window = 60 / median RR interval of the last 8 s. ``hr_mae_bidmc`` over the
  windows with a reported rate; ``coverage_bidmc``: share of all 480 windows (including
  the start-up) with a reported rate.

Standard library only. Run: ``.venv/bin/python bench/ppg_accuracy.py`` (options: --seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from bedside.ppg import Oximeter
from wardsim.ppgsignals import BIDMC_FILE, BIDMC_FS, bidmc, ecg_rpeaks, reference_hr, run, synth

BIDMC = Path(__file__).resolve().parent / "data" / BIDMC_FILE

SETTLE_S = 12
HRS = (40, 50, 60, 75, 90, 110, 130, 150, 180)
SPO2S = (80, 85, 90, 95, 100)
PIS = (0.7, 2.0, 5.0)
WANDER = 0.5  # baseline wander amplitude relative to the pulse amplitude


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def synthetic(seconds):
    hr_err, sp_err = [], []
    windows = hr_n = sp_n = 0
    worst = []
    k = 0
    for fs in (50, 100):
        for hr in HRS:
            for spo2 in SPO2S:
                pi = PIS[k % len(PIS)]
                burst_at = 20 + (k * 7) % (seconds - 35)
                # respiratory baseline wander at half the pulse amplitude (of the order seen in
                # finger PPG); sensor noise 20 counts rms
                red, ir, beats = synth(fs, seconds, hr, spo2, pi=pi, noise=20.0, wander=WANDER * pi / 100,
                                       motion=[(burst_at, 6)], seed=k)
                k += 1
                e_hr, e_sp = [], []
                for t, r in run(Oximeter(fs), red, ir):
                    if t <= SETTLE_S:
                        continue
                    windows += 1
                    if r["hr"] is not None:
                        ref = reference_hr(beats, t)
                        if ref is not None:
                            e_hr.append(abs(r["hr"] - ref))
                    if r["spo2"] is not None:
                        e_sp.append(r["spo2"] - spo2)
                hr_err += e_hr
                sp_err += e_sp
                hr_n += len(e_hr)
                sp_n += len(e_sp)
                if e_hr:
                    worst.append((max(e_hr), fs, hr, spo2, pi))
            log("synthetic fs=%d hr=%d done (%d records)" % (fs, hr, k))
    worst.sort(reverse=True)
    return {
        "hr_mae_synthetic": sum(hr_err) / max(1, len(hr_err)),
        "spo2_arms_synthetic": math.sqrt(sum(e * e for e in sp_err) / max(1, len(sp_err))),
        "coverage_synthetic": hr_n / max(1, windows),
        "spo2_coverage_synthetic": sp_n / max(1, windows),
        "hr_max_err_synthetic": worst[0][0] if worst else None,
        "records_synthetic": k,
    }


def stress(seconds):
    """Baseline wander twice the pulse amplitude (deep breathing, a loose probe): how much
    coverage the detector keeps and whether what it reports is still right."""
    errs = []
    windows = n = 0
    k = 1000
    for hr in (40, 60, 90, 130, 180):
        for pi in (0.7, 2.0):
            red, ir, beats = synth(100, seconds, hr, 95, pi=pi, noise=20.0, wander=2 * pi / 100, seed=k)
            k += 1
            for t, r in run(Oximeter(100), red, ir):
                if t <= SETTLE_S:
                    continue
                windows += 1
                ref = reference_hr(beats, t)
                if r["hr"] is not None and ref is not None:
                    n += 1
                    errs.append(abs(r["hr"] - ref))
    log("stress: wander 2x pulse done")
    return {
        "hr_mae_wander2x": sum(errs) / max(1, len(errs)),
        "hr_max_err_wander2x": max(errs) if errs else None,
        "coverage_wander2x": n / max(1, windows),
    }


def bidmc_run():
    red, ir, ecg = bidmc(BIDMC)
    beats = ecg_rpeaks(ecg, BIDMC_FS)
    log("bidmc: %d R-peaks in %.0f s (%.1f bpm mean)" % (len(beats), len(ecg) / BIDMC_FS,
                                                         60.0 * len(beats) * BIDMC_FS / len(ecg)))
    errs = []
    windows = reported = 0
    for t, r in run(Oximeter(BIDMC_FS), red, ir):
        windows += 1
        if r["hr"] is None:
            continue
        reported += 1
        ref = reference_hr(beats, t)
        if ref is not None:
            errs.append(abs(r["hr"] - ref))
    return {
        "hr_mae_bidmc": sum(errs) / max(1, len(errs)),
        "hr_p95_err_bidmc": sorted(errs)[int(0.95 * (len(errs) - 1))] if errs else None,
        "coverage_bidmc": reported / max(1, windows),
        "windows_bidmc": windows,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=90, help="length of each synthetic record")
    args = ap.parse_args()
    t0 = time.monotonic()
    res = {}
    res.update(synthetic(args.seconds))
    res.update(stress(args.seconds))
    res.update(bidmc_run())
    res["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(dict((k, round(v, 3) if isinstance(v, float) else v) for k, v in res.items())))


if __name__ == "__main__":
    main()
