"""bedside.ppg (pulse oximetry from raw red/IR samples) on CPython, from tables of synthetic
signals with a known truth and a minute of the BIDMC recording against its ECG.

The same module on real MicroPython (agreement and heap) is in test_micropython.py."""

from __future__ import annotations

import random

import pytest

from bedside import ppg
from bedside.ppg import Oximeter, spo2_from_r

from wardsim.ppgsignals import BIDMC_FILE, BIDMC_FS, bidmc, ecg_rpeaks, reference_hr, run, synth

from .conftest import REPO

BIDMC = REPO / "bench" / "data" / BIDMC_FILE

SECONDS = 30
SETTLE_S = 12  # filters (~1.3 s) plus a full beat history at 40 bpm


def _settled(out):
    return [r for t, r in out if t > SETTLE_S]


@pytest.mark.parametrize("fs", [50, 100])
@pytest.mark.parametrize("hr", [40, 60, 90, 120, 180])
@pytest.mark.parametrize("spo2", [80, 90, 97, 100])
def test_synthetic_rate_and_saturation(fs, hr, spo2):
    red, ir, _ = synth(fs, SECONDS, hr, spo2, seed=hr * 1000 + spo2)
    res = _settled(run(Oximeter(fs), red, ir))
    assert all(r["probe"] == "ok" for r in res)
    hrs = [r["hr"] for r in res if r["hr"] is not None]
    sps = [r["spo2"] for r in res if r["spo2"] is not None]
    assert len(hrs) >= 0.9 * len(res), res
    assert len(sps) >= 0.7 * len(res), res
    assert all(abs(h - hr) <= 3 for h in hrs), hrs
    assert all(abs(s - spo2) <= 3 for s in sps), sps
    assert all(0 <= s <= 100 for s in sps)
    pis = [r["pi"] for r in res if r["pi"] is not None]
    assert all(0.5 < p < 2.5 for p in pis), pis  # 2 % modulation, minus the filter's loss at high rates
    assert min(r["sqi"] for r in res if r["hr"] is not None) >= ppg.SQI_MIN


@pytest.mark.parametrize("fs", [25, 125, 200])
@pytest.mark.parametrize("hr", [40, 90, 180])
def test_other_sample_rates(fs, hr):
    red, ir, _ = synth(fs, SECONDS, hr, 92, seed=fs + hr)
    res = _settled(run(Oximeter(fs), red, ir))
    assert all(r["hr"] is not None and abs(r["hr"] - hr) <= 3 for r in res), res
    assert all(r["spo2"] is None or abs(r["spo2"] - 92) <= 3 for r in res), res


@pytest.mark.parametrize(
    "r, expected",
    [(0.4, 100.0), (0.3, 100.0), (0.6, 95.0), (1.0, 85.0), (1.6, 70.0),
     (1.7, None), (0.29, None), (float("nan"), None), (None, None)],
)
def test_calibration_curve(r, expected):
    # linear: SpO2 = 110 - 25 R, clamped to 100, null outside 70..100 or for R < 0.3
    got = spo2_from_r(r)
    assert got == expected if expected is None else abs(got - expected) < 1e-9


def test_calibration_inverse():
    for s in (70, 80, 90.5, 100):
        assert abs(spo2_from_r(ppg.r_from_spo2(s)) - s) < 1e-9


def test_probe_off_gives_off_and_nulls():
    red, ir, _ = synth(100, 15, 75, 97, dc_ir=5000, dc_red=4000)
    res = [r for t, r in run(Oximeter(100), red, ir)]
    assert len(res) == 15
    assert all(r == {"hr": None, "spo2": None, "pi": None, "sqi": 0.0, "probe": "off"} for r in res)


def test_probe_removed_and_replaced():
    fs = 100
    on_r, on_i, _ = synth(fs, 20, 75, 95, seed=1)
    off = [3000] * (10 * fs)
    ox = Oximeter(fs)
    out = run(ox, on_r + off + on_r, on_i + off + on_i)
    by_s = dict((int(round(t)), r) for t, r in out)
    assert by_s[19]["probe"] == "ok" and abs(by_s[19]["hr"] - 75) <= 3
    for s in range(23, 30):  # the slow DC falls below the level within ~2 s
        assert by_s[s]["probe"] == "off" and by_s[s]["hr"] is None and by_s[s]["spo2"] is None
    # back on: no stale beats from before; a fresh rate once enough beats are in
    assert by_s[31]["probe"] == "ok" and by_s[31]["hr"] is None
    assert abs(by_s[49]["hr"] - 75) <= 3 and abs(by_s[49]["spo2"] - 95) <= 3


def test_noise_only_gives_nulls_and_low_quality():
    rng = random.Random(7)
    fs = 100
    ir = [int(120000 + rng.gauss(0, 40)) for _ in range(30 * fs)]
    red = [int(90000 + rng.gauss(0, 40)) for _ in range(30 * fs)]
    res = _settled(run(Oximeter(fs), red, ir))
    assert all(r["probe"] == "ok" for r in res)
    assert all(r["hr"] is None and r["spo2"] is None and r["pi"] is None for r in res), res
    assert max(r["sqi"] for r in res) < ppg.SQI_MIN


def test_flat_signal_gives_nulls():
    res = _settled(run(Oximeter(50), [90000] * 1000, [120000] * 1000))
    assert all(r["hr"] is None and r["probe"] == "ok" for r in res)


def test_swap_red_ir_for_clone_boards():
    fs, spo2 = 100, 90
    red, ir, _ = synth(fs, SECONDS, 80, spo2, seed=3)
    swapped = _settled(run(Oximeter(fs, swap_red_ir=True), ir, red))  # the board swaps them
    assert all(abs(r["spo2"] - spo2) <= 3 for r in swapped if r["spo2"] is not None)
    assert sum(r["spo2"] is not None for r in swapped) >= 0.7 * len(swapped)
    wrong = _settled(run(Oximeter(fs), ir, red))  # not told: R is inverted, no plausible SpO2
    assert all(r["spo2"] is None or abs(r["spo2"] - spo2) > 10 for r in wrong)


def test_motion_bursts_never_give_a_wrong_number():
    fs = 100
    red, ir, _ = synth(fs, 60, 70, 94, motion=[(20, 6), (40, 5)], seed=11)
    res = _settled(run(Oximeter(fs), red, ir))
    assert all(r["hr"] is None or abs(r["hr"] - 70) <= 5 for r in res), res
    assert all(r["spo2"] is None or abs(r["spo2"] - 94) <= 4 for r in res), res
    # 11 s of motion cost ~25 s of output: the motion beats must leave the history first
    assert sum(r["hr"] is not None for r in res) >= 0.4 * len(res)


def test_rejects_a_bad_rate():
    with pytest.raises(ValueError):
        Oximeter(5)


@pytest.fixture(scope="module")
def bidmc_minute():
    red, ir, ecg = bidmc(BIDMC)
    n = 60 * BIDMC_FS
    start = 120 * BIDMC_FS
    return red[start:start + n], ir[start:start + n], ecg[start:start + n]


def test_bidmc_minute_against_ecg(bidmc_minute):
    red, ir, ecg = bidmc_minute
    beats = ecg_rpeaks(ecg)
    assert 80 <= 60 * len(beats) / 60.0 <= 100  # this subject sits around 90 bpm
    res = [(t, r) for t, r in run(Oximeter(BIDMC_FS), red, ir) if t > SETTLE_S]
    got = [(t, r["hr"]) for t, r in res if r["hr"] is not None]
    assert len(got) >= 0.9 * len(res)
    for t, hr in got:
        ref = reference_hr(beats, t)
        assert ref is not None and abs(hr - ref) <= 5, (t, hr, ref)


def test_sample_counter_rebases_without_a_glitch():
    # positions stay small ints on a board (2**29 samples, ~62 days at 100 Hz)
    fs = 100
    red, ir, _ = synth(fs, 40, 72, 96, seed=5)
    ox = Oximeter(fs)
    out = run(ox, red[:20 * fs], ir[:20 * fs])
    ox._n = 0x20000000 - 5 * fs - (0x20000000 - 5 * fs) % ox._W + ox._n % ox._W  # same ring slot
    ox._last += ox._n - 20 * fs
    # shift every stored position as if the counter had run this long
    delta = ox._n - 20 * fs
    for i in range(ppg.NBEATS):
        ox._bpos[i] += delta
    for i in range(ppg.NTIMES):
        ox._tpos[i] += delta
    ox._plast += delta
    for name in ("_pkn", "_trn", "_atn", "_ppkn", "_mot_n", "_mot_0"):
        setattr(ox, name, getattr(ox, name) + delta)
    out = run(ox, red[20 * fs:], ir[20 * fs:])
    assert ox._n < 0x20000000
    assert all(r["hr"] is not None and abs(r["hr"] - 72) <= 3 for t, r in out), out


@pytest.mark.parametrize("fs", [50, 100])
@pytest.mark.parametrize("delay, height", [(0.25, 0.6), (0.3, 0.8), (0.35, 0.4)])
def test_pronounced_second_wave_is_not_a_beat(fs, delay, height):
    # issue 10: a diastolic wave 0.25..0.35 s after the systole must not double the rate
    red, ir, _ = synth(fs, 40, 95, 95, second=(delay, height), seed=int(delay * 100) + fs)
    res = _settled(run(Oximeter(fs), red, ir))
    hrs = [r["hr"] for r in res if r["hr"] is not None]
    assert all(abs(h - 95) <= 5 for h in hrs), hrs
    assert len(hrs) >= 0.8 * len(res), res


def test_random_motion_withholds_values_during_and_after_the_burst():
    fs = 100
    red, ir, beats = synth(fs, 60, 80, 95, motion_random=[(25, 8)], pressure=[(29, 0.8, 1.4)], seed=21)
    res = run(Oximeter(fs), red, ir)
    by_s = dict((int(round(t)), r) for t, r in res)
    assert by_s[24]["hr"] is not None  # clean before the burst
    # inside the burst (after its first second) and the 2 s after it: null
    assert all(by_s[s]["hr"] is None and by_s[s]["spo2"] is None for s in range(27, 35)), \
        [(s, by_s[s]["hr"]) for s in range(25, 36)]
    assert all(r["hr"] is None or abs(r["hr"] - 80) <= 10 for t, r in res if t > SETTLE_S)
    assert sum(by_s[s]["hr"] is not None for s in range(45, 60)) >= 12  # back once clean


@pytest.mark.parametrize("hr", [60, 95, 140])
def test_irregular_rhythm_gives_the_mean_rate(hr):
    from wardsim.ppgsignals import mean_rate

    fs = 100
    red, ir, beats = synth(fs, 60, hr, 95, irregular=0.25, seed=hr)
    res = [(t, r) for t, r in run(Oximeter(fs), red, ir) if t > SETTLE_S]
    got = [(t, r["hr"]) for t, r in res if r["hr"] is not None]
    assert len(got) >= 0.8 * len(res)
    for t, h in got:
        assert abs(h - mean_rate(beats, t)) <= 6, (t, h, mean_rate(beats, t))
