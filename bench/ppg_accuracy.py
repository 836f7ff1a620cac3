"""Accuracy of the bedside pulse oximeter (``firmware/bedside/ppg.py``): ``make bench-ppg``.

Progress goes to stderr; the last stdout line is one JSON object (see docs/ppg.md):

- Synthetic red/IR (firmware/wardsim/ppgsignals.py: known rate, R from the inverse of the
  calibration curve, baseline wander, sensor noise, one motion burst per record) over a
  grid of HR 40..180 bpm x SpO2 80..100 % x perfusion index, at 50 and 100 Hz, 90 s each.
  ``hr_mae_synthetic``: mean |hr - truth| over the 1-s outputs that report a rate (truth:
  60 / median of the true beat intervals of the last 8 s); ``spo2_arms_synthetic``: the
  root mean square of (spo2 - truth) over the outputs that report SpO2 (the FDA's A_rms);
  ``coverage_synthetic`` / ``spo2_coverage_synthetic``: share of outputs after the first
  12 s with a value; ``hr_max_err_synthetic`` the largest error (the 3 worst records go to
  stderr); ``hr_off10_share_synthetic`` / ``spo2_off4_share_synthetic``: share of the
  published HR more than 10 bpm off / SpO2 more than 4 points off.
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
from wardsim.ppgsignals import BIDMC_FILE, BIDMC_FS, bidmc, ecg_rpeaks, mean_rate, reference_hr, run, synth

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
    k = off10 = off4 = 0
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
                off10 += sum(1 for e in e_hr if e > 10)
                off4 += sum(1 for e in e_sp if abs(e) > 4)
                sp_err += e_sp
                hr_n += len(e_hr)
                sp_n += len(e_sp)
                if e_hr:
                    worst.append((max(e_hr), fs, hr, spo2, pi, burst_at))
            log("synthetic fs=%d hr=%d done (%d records)" % (fs, hr, k))
    worst.sort(reverse=True)
    for w in worst[:3]:
        log("synthetic worst: %.1f bpm (fs=%d hr=%d spo2=%d pi=%s burst at %d s)" % w)
    return {
        "hr_mae_synthetic": sum(hr_err) / max(1, len(hr_err)),
        "spo2_arms_synthetic": math.sqrt(sum(e * e for e in sp_err) / max(1, len(sp_err))),
        "coverage_synthetic": hr_n / max(1, windows),
        "spo2_coverage_synthetic": sp_n / max(1, windows),
        "hr_max_err_synthetic": worst[0][0] if worst else None,
        "hr_off10_share_synthetic": off10 / max(1, len(hr_err)),
        "spo2_off4_share_synthetic": off4 / max(1, len(sp_err)),
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


def _case_records(name, seconds):
    """The records of one morphology case: a list of (fs, hr, spo2, synth keyword options)."""
    recs = []
    k = 0
    if name == "clean":
        for fs in (50, 100):
            for hr in HRS:
                recs.append((fs, hr, 95, dict(pi=2.0)))
    elif name == "second_wave":
        # diastolic wave 0.2..0.35 s after the systolic peak, 0.2..0.8 of its height, 40..180 bpm
        for hr in (40, 60, 75, 95, 110, 130, 150, 180):
            for delay in (0.2, 0.25, 0.3, 0.35):
                for height in (0.2, 0.4, 0.6, 0.8):
                    fs = (50, 100)[k % 2]
                    recs.append((fs, hr, (85, 90, 95, 100)[k % 4], dict(second=(delay, height), pi=(0.7, 2.0, 5.0)[k % 3])))
                    k += 1
    elif name == "motion_random":
        # two bursts of mixed 0.3..4 Hz movement, the second with a contact-pressure step in it
        for hr in HRS:
            for j in range(3):
                t1 = 15 + 7 * j
                t2 = t1 + 30 + 3 * j
                recs.append(((50, 100)[k % 2], hr, (85, 92, 98)[j],
                             dict(motion_random=[(t1, 4 + 2 * j), (t2, 8 - 2 * j)],
                                  pressure=[(t2 + 2, 0.8 + 0.2 * j, 1.5 - 0.4 * j)], pi=(0.7, 2.0, 5.0)[j])))
                k += 1
    elif name == "motion_periodic":
        for hr in HRS:
            for j in range(3):
                t1 = 15 + 7 * j
                recs.append(((50, 100)[k % 2], hr, (85, 92, 98)[j],
                             dict(motion=[(t1, 6), (t1 + 30, 4 + 2 * j)], pi=(0.7, 2.0, 5.0)[j])))
                k += 1
    elif name == "pressure":
        # contact pressure steps: DC x0.7..1.3 and pulse amplitude x0.5..2 at three moments
        for hr in HRS:
            for j in range(2):
                recs.append(((50, 100)[k % 2], hr, (88, 97)[j],
                             dict(pressure=[(20, 1.2 - 0.5 * j, 0.5 + j), (40, 0.8 + 0.5 * j, 1.6 - 0.9 * j),
                                            (60, 1.0, 1.0)])))
                k += 1
    elif name == "irregular":
        # beat intervals varying +-25 % at random (atrial-fibrillation-like)
        for hr in (50, 60, 75, 90, 110, 130, 150):
            for j in range(3):
                recs.append(((50, 100)[k % 2], hr, (85, 92, 98)[j], dict(irregular=0.25, pi=(0.7, 2.0, 5.0)[j])))
                k += 1
    elif name == "low_perfusion":
        for hr in HRS:
            for j, pi in enumerate((0.2, 0.3, 0.5)):
                recs.append(((50, 100)[k % 2], hr, (85, 92, 98)[j], dict(pi=pi)))
                k += 1
    return recs


CASES = ("clean", "second_wave", "motion_random", "motion_periodic", "pressure", "irregular", "low_perfusion")


def cases(seconds):
    """Per morphology: hr_mae, coverage (share of the outputs after the first 12 s with a
    rate), share of the published rates more than 10 bpm off and of the published SpO2 values
    more than 4 points off. Truth: ``mean_rate`` (60 / mean true interval over the last 8 s)."""
    out = {}
    for name in CASES:
        recs = _case_records(name, seconds)
        windows = hr_n = sp_n = hr_bad = sp_bad = 0
        errs = []
        worst = (0.0, None)
        for k, (fs, hr, spo2, kw) in enumerate(recs):
            kw.setdefault("wander", WANDER * kw.get("pi", 2.0) / 100)
            red, ir, beats = synth(fs, seconds, hr, spo2, noise=20.0, seed=5000 + 100 * CASES.index(name) + k, **kw)
            for t, r in run(Oximeter(fs), red, ir):
                if t <= SETTLE_S:
                    continue
                windows += 1
                if r["hr"] is not None:
                    hr_n += 1
                    ref = mean_rate(beats, t)
                    if ref is not None:
                        e = abs(r["hr"] - ref)
                        errs.append(e)
                        if e > 10:
                            hr_bad += 1
                        if e > worst[0]:
                            worst = (e, "fs=%d hr=%d %s t=%.0f got %.0f" % (fs, hr, kw, t, r["hr"]))
                if r["spo2"] is not None:
                    sp_n += 1
                    if abs(r["spo2"] - spo2) > 4:
                        sp_bad += 1
        out[name] = {"records": len(recs), "hr_mae": round(sum(errs) / max(1, len(errs)), 3),
                     "coverage": round(hr_n / max(1, windows), 3),
                     "hr_off10": round(hr_bad / max(1, hr_n), 4), "spo2_off4": round(sp_bad / max(1, sp_n), 4)}
        log("case %s: %s; worst %.1f bpm (%s)" % (name, out[name], worst[0], worst[1]))
    return {"cases": out}


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
    ap.add_argument("--case-seconds", type=int, default=90, help="length of each morphology-case record")
    ap.add_argument("--no-cases", action="store_true", help="skip the morphology cases")
    ap.add_argument("--only-cases", action="store_true", help="only the morphology cases")
    args = ap.parse_args()
    t0 = time.monotonic()
    res = {}
    if not args.only_cases:
        res.update(synthetic(args.seconds))
        res.update(stress(args.seconds))
        res.update(bidmc_run())
    if not args.no_cases:
        res.update(cases(args.case_seconds))
    res["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(dict((k, round(v, 3) if isinstance(v, float) else v) for k, v in res.items())))


if __name__ == "__main__":
    main()
