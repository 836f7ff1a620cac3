"""Pulse oximetry from raw red/IR samples: pulse rate, SpO2, perfusion index, signal quality.

``Oximeter(fs)`` is a streaming processor. The sensor driver (or the host simulator) calls
``add(red, ir)`` for every sample, ints in ADC counts (MAX30102: 18-bit, 0..262143), at
``fs`` samples per second (10..400 accepted; tested at 25, 50, 100, 125 and 200). ``add``
returns True once per second of samples; the sampler then calls ``result()``, which returns
the dict ``bedside.reading.Encoder.reading`` takes (without ``temp``); ``result()`` may
also be called at any other moment (on demand)::

    {"hr": bpm | None, "spo2": % | None, "pi": % | None, "sqi": 0..1, "probe": "ok" | "off"}

hr, spo2 and pi are None whenever the probe is off or the signal quality is below
``SQI_MIN``: the device publishes null rather than a number the algorithm does not trust.

Why integers: on ESP32 and RP2 builds (and the WebAssembly port the tests use) every float
is a heap object, so one float operation allocates 16 bytes. The per-sample path (``add``)
therefore uses small ints only (all intermediate values stay below 2**30) and preallocated
lists: it allocates nothing in the steady state. Floats appear once per second in
``result()`` and at construction.

Signal chain (per channel; ``docs/ppg.md`` has the numbers):

1. Probe detection: a slow DC (exponential mean, time constant ~4/pi s) of the IR counts;
   below ``probe_dc_min`` the probe is "off" (no finger: the IR LED light is not reflected
   back) and the beat history is cleared.
2. High-pass: two cascaded first-order DC-removal stages (x minus its exponential mean,
   time constant 2**k samples, k = round(log2(fs / pi)), i.e. a cut-off of ~0.5 Hz):
   removes DC and baseline wander. Inputs are scaled by 8 first so that the integer
   means keep fractional resolution.
3. Low-pass: two cascaded moving averages of L = round(fs / 12) samples (first zero at
   ~12 Hz, -3 dB at ~3.8 Hz): removes mains flicker and sensor noise. Both channels get
   the same filter, so the ratio of ratios does not depend on its gain.
4. Inversion: more blood absorbs more light, so raw counts fall at systole; the filtered
   signal is negated so that a beat is a peak.
5. Beats (IR): hysteresis on the slope d = v(now) - v(~40 ms ago), with separate
   envelopes for rises and falls (peak-hold, decaying with time constant ~2 s): a beat's
   upstroke is d above +3/8 of the rise envelope, its end d below -3/8 of the fall
   envelope. The beat is the maximum of v in between (time refined to 1/16 sample by a
   parabola), its AC the peak above the line through the troughs before and after it;
   red: the red signal at the same instants. A refractory period of 0.25 s (240 bpm)
   rejects anything faster; an interval over 2 s (30 bpm) is a gap, not a rate. A second
   (diastolic) wave is told from a beat by its less steep upstroke against the previous
   beat's; an artefact by a slope over 3x the beats' (outputs null for 2 s after it).
6. Per second (``result``), over the last ``NBEATS`` beats within 12 s:
   hr = 60 * fs / mean interval of the beats of the last 8 s, only beats the quality checks
   below see (halved when the last 8 beats alternate strong/weak: two waves per beat, and
   only to 30 bpm or more); R = median over beats of (AC_red/DC_red)/(AC_ir/DC_ir);
   spo2 = 110 - 25 R (the common linear calibration), clamped to 0..100 and None below 70
   or for R < 0.3 (outside any calibration), and None when the beats' R disagree (median
   absolute deviation over 15 %); pi = median AC_ir / DC_ir * 100 (of the band-passed
   signal, so it reads low at fast rates).
   sqi = min(rhythm, shape, amplitude), each 0..1:
   rhythm: relative MAD of the intervals (1 up to 0.2, 0 from 0.35: an irregular rhythm
   passes), 0 with any interval over 1.6x or under 0.5x the median (a missed or extra
   beat would bias the mean); shape: mean correlation of consecutive
   beats' waveforms (0 below 0.6, 1 from 0.9); amplitude: PI (0 below 0.03 %, 1 from
   0.1 %), the beats' AC consistent (relative MAD under 0.2..0.5), and at most one beat
   outside 0.4..2.5 times the PI of recent good seconds and at most one whose upstroke
   slope is outside 0.4..2.5 times the beats' median (motion makes big regular "beats").
   Values are published only when sqi >= SQI_MIN, at least 5 beats (4 intervals) are
   recent and the newest is not stale (2.5 s or 2.2 intervals).

Who calls it: the board's sampler (real MAX30102 driver) and the tests/bench. ``swap_red_ir``
is for clone boards with the LEDs' channels exchanged.
"""

from math import log, sqrt

NBEATS = 24  # beats kept for the quality checks, the AC and R (the rate uses no other)
NTIMES = 40  # beat times kept for the rate: 8 s at 300 bpm
RATE_S = 8  # the rate is the mean over the beats of the last RATE_S seconds
WEAK_8 = 6  # a candidate whose steepest upstroke is below WEAK_8/8 of the beats' is a second wave
MOTION_X = 3  # a slope over MOTION_X times the beats' steepest upstroke is an artefact
MOTION_HOLD_S = 2  # outputs withheld this long after the last artefact (then 5 clean beats are needed)
MOTION_RELEARN_S = 8  # artefacts flagged this long without a break: relearn the beats' slope
SQI_MIN = 0.5  # below this the vitals are null
PROBE_DC_MIN = 50000  # IR DC counts; a finger on a MAX30102 at typical LED current gives 1e5+
WINDOW_S = 12  # beats older than this do not count
CAL_A = 110.0  # spo2 = CAL_A - CAL_B * R
CAL_B = 25.0
REF_RESET_S = 30  # after this many low-quality seconds in a row the perfusion reference resets
R_MIN = 0.3  # R below this (spo2 > 102.5) is outside any calibration: not a reading


def spo2_from_r(r):
    """SpO2 (%) from the ratio of ratios R by the linear calibration 110 - 25 R, clamped to
    0..100; None when R < R_MIN or the result is below 70 (outside the validated range)."""
    if r is None or r != r or r < R_MIN:
        return None
    s = CAL_A - CAL_B * r
    s = 100.0 if s > 100.0 else 0.0 if s < 0.0 else s
    return s if s >= 70.0 else None


def r_from_spo2(spo2):
    """The inverse of the calibration (for synthetic signals with a known truth)."""
    return (CAL_A - spo2) / CAL_B


def _clamp01(x):
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _median(xs):
    """Median of a non-empty list (callers check the length; 0.0 for an empty one)."""
    s = sorted(xs)
    m = len(s)
    if m == 0:
        return 0.0
    return s[m // 2] if m % 2 else (s[m // 2 - 1] + s[m // 2]) / 2


def _alternating(xs):
    """True when the values alternate high, low, high... with every high one at least 6 %
    above every low one (at least 6 values): the detector is counting two waves per beat."""
    m = len(xs)
    if m < 6:
        return False
    hi = xs[0::2] if xs[0] > xs[1] else xs[1::2]
    lo = xs[1::2] if xs[0] > xs[1] else xs[0::2]
    return min(hi) * 100 >= max(lo) * 106


class Oximeter:
    def __init__(self, fs, swap_red_ir=False, probe_dc_min=PROBE_DC_MIN):
        fs = int(fs)
        if not 10 <= fs <= 400:
            raise ValueError("fs must be 10..400 Hz")
        self.fs = fs
        self.swap_red_ir = bool(swap_red_ir)
        self.probe_dc_min = probe_dc_min
        # Power-of-two time constants: shifts are exact integer operations.
        self._k = max(1, int(log(fs / 3.14159) / log(2) + 0.5))  # high-pass, ~0.5 Hz
        self._ks = self._k + 2  # slow DC for probe detection and ratio of ratios
        self._kd = max(1, int(log(2.0 * fs) / log(2) + 0.5))  # envelope decay, ~2 s
        self._L = max(1, int(fs / 12.0 + 0.5))
        self._refr = fs // 4  # 0.25 s
        self._ds = max(1, (fs + 12) // 25)  # slope span, ~40 ms
        self._max_ivl = 2 * fs  # 2 s
        self._win = WINDOW_S * fs
        self._W = 6 * fs  # filtered IR kept for the waveform correlation
        L = self._L
        self._b1i = [0] * L
        self._b2i = [0] * L
        self._b1r = [0] * L
        self._b2r = [0] * L
        self._wave = [0] * self._W
        # Beat ring: position (sample index), interval (1/16 samples, 0 = none), AC and DC.
        self._bpos = [0] * NBEATS
        self._bivl = [0] * NBEATS
        self._bac_ir = [0] * NBEATS
        self._bac_red = [0] * NBEATS
        self._bdc_ir = [0] * NBEATS
        self._bdc_red = [0] * NBEATS
        self._bdm = [0] * NBEATS  # steepest upstroke
        # Beat times for the rate (a longer ring): position (sample) and 1/16-sample offset.
        self._tpos = [0] * NTIMES
        self._tfr = [0] * NTIMES
        self._hold = MOTION_HOLD_S * fs
        self._n = 0  # samples since construction (rebased, see add)
        self._due = 0
        self._fresh = True
        self.reset()

    def reset(self):
        """Forget the signal and the beats (probe off, or a new patient)."""
        self._fresh = True
        self._nb = 0  # beats stored (<= NBEATS)
        self._bi = 0  # next beat slot
        self._last = -1  # position of the last accepted beat, -1: none
        self._lastf = 0  # its sub-sample offset, 1/16 sample
        self._envp = self._envn = 0
        self._up = False
        self._pk = self._pkn = self._pkr = self._tr = self._trn = self._trr = 0
        self._atr = self._atn = self._atrr = 0  # the trough before the current peak
        self._pend = -1  # beat slot waiting for its AC (needs the trough after it)
        self._ppk = self._ppkn = self._ppkr = 0  # that beat's peak
        self._filled = 0  # samples in the filters since the (re)start
        self._on = False
        self._pi_ref = None  # perfusion index of recent good seconds (motion detection)
        self._bad = 0  # consecutive results with a low sqi
        self._ti = 0  # next beat-time slot
        self._nt = 0  # beat times stored (<= NTIMES)
        self._dmx = 0  # steepest slope of the current upstroke
        self._sref = 0  # typical steepest upstroke of accepted beats (0: not learnt yet)
        self._lastivl = 0  # the last accepted interval, 1/16 samples (0: none)
        self._lastdm = 0  # the steepest upstroke of the last accepted beat
        self._plast = -1  # the beat before it: position, offset, interval, upstroke
        self._plastf = self._plastivl = self._plastdm = 0
        self._mot_n = self._n - 10 * self.fs  # last sample flagged as an artefact
        self._mot_0 = self._mot_n  # first sample of the current run of artefact flags

    def _start(self, red, ir):
        # Start every mean at the current level: no step through the filters.
        k = self._k
        self._dsi = ir << self._ks
        self._dsr = red << self._ks
        self._h1i = (ir << 3) << k
        self._h1r = (red << 3) << k
        self._h2i = self._h2r = 0
        self._s1i = self._s2i = self._s1r = self._s2r = 0
        L = self._L
        for i in range(L):
            self._b1i[i] = self._b2i[i] = self._b1r[i] = self._b2r[i] = 0
        for i in range(self._W):
            self._wave[i] = 0
        self._p = 0
        self._fresh = False

    def add(self, red, ir):
        """Feed one sample pair (ints, ADC counts). Returns True when a second of samples
        has gone by since the last ``result()`` (call it then). No allocation."""
        if self.swap_red_ir:
            red, ir = ir, red
        n = self._n + 1
        if n >= 0x20000000:  # keep positions small ints (2**29 samples: ~62 days at 100 Hz)
            n = self._rebase(n)
        self._n = n
        self._due += 1
        if self._fresh:
            self._start(red, ir)
        # 1. slow DC and probe detection
        ks = self._ks
        d = self._dsi
        d += ir - (d >> ks)
        self._dsi = d
        d = self._dsr
        d += red - (d >> ks)
        self._dsr = d
        if (self._dsi >> ks) < self.probe_dc_min:
            if self._on:
                self.reset()
                self._fresh = False  # keep following the slow DC until the finger returns
            return self._due >= self.fs
        if not self._on:
            # finger (back) on: restart the filters from here, not from the off level
            self._on = True
            self._start(red, ir)
        k = self._k
        L = self._L
        p = self._p
        # 2.-4. IR: two DC-removal stages, two moving averages, negate
        x = ir << 3
        a = self._h1i
        h = x - (a >> k)
        self._h1i = a + h
        a = self._h2i
        h2 = h - (a >> k)
        self._h2i = a + h2
        b = self._b1i
        s = self._s1i + h2 - b[p]
        b[p] = h2
        self._s1i = s
        m = s // L
        b = self._b2i
        s = self._s2i + m - b[p]
        b[p] = m
        self._s2i = s
        v = -s
        # red, the same
        x = red << 3
        a = self._h1r
        h = x - (a >> k)
        self._h1r = a + h
        a = self._h2r
        h2 = h - (a >> k)
        self._h2r = a + h2
        b = self._b1r
        s = self._s1r + h2 - b[p]
        b[p] = h2
        self._s1r = s
        m = s // L
        b = self._b2r
        s = self._s2r + m - b[p]
        b[p] = m
        self._s2r = s
        vr = -s
        p += 1
        self._p = 0 if p >= L else p
        self._wave[n % self._W] = v
        if self._filled < self._win:
            # the filters settle for 2**k * 4 samples (~1.3 s) before any beat counts
            self._filled += 1
            if self._filled < (4 << k):
                return self._due >= self.fs
        # 5. beats: hysteresis on the slope (v now minus v ~40 ms ago), peaks and troughs
        # on v. The slope of the pulse is several times that of the residual baseline
        # wander (respiration, 0.1..0.5 Hz, close to the slowest pulse), so a steep rise
        # and a steep fall mark every beat even when the wander is larger than the pulse.
        # Separate envelopes for rises and falls: the upstroke is steeper than the fall.
        d = v - self._wave[(n - self._ds) % self._W]
        kd = self._kd
        e = self._envp
        e -= e >> kd
        if d > e:
            e = d
        self._envp = e
        th = (e * 3) >> 3
        e = self._envn
        e -= e >> kd
        if -d > e:
            e = -d
        self._envn = e
        tl = -((e * 3) >> 3)
        # Artefact: a slope several times the steepest upstroke of the accepted beats. A
        # pulse never does that; movement and a step in contact pressure do.
        sr = self._sref
        if sr > 0 and self._nt >= 4 and (d > MOTION_X * sr or -d > MOTION_X * sr):
            if n - self._mot_n > self._hold:
                self._mot_0 = n
            self._mot_n = n
            if n - self._mot_0 > MOTION_RELEARN_S * self.fs:
                self._sref = 0  # a lasting change (probe moved, perfusion up): relearn
        if self._up:
            if d > self._dmx:
                self._dmx = d
            if v > self._pk:
                self._pk = v
                self._pkn = n
                self._pkr = vr  # red at the IR peak: same filter, same timing
            if d < tl:
                self._up = False
                self._beat(self._pkn)
                self._tr = v
                self._trn = n
                self._trr = vr
        else:
            if v < self._tr:
                self._tr = v
                self._trn = n
                self._trr = vr
            if d > th:
                self._up = True
                self._dmx = d
                if self._pend >= 0:
                    self._amplitude()
                self._pend = -1
                # this trough is the one before the next peak
                self._atr = self._tr
                self._atn = self._trn
                self._atrr = self._trr
                self._pk = v
                self._pkn = n
                self._pkr = vr
        return self._due >= self.fs

    def _amplitude(self):
        # AC of the pending beat: its peak above the straight line through the troughs
        # before and after it, so residual baseline wander (a slope across the beat) does
        # not add to one beat and subtract from the next. Integer arithmetic throughout:
        # the line's slope is taken in 1/256 steps to keep every product below 2**30.
        t1 = self._atn
        span = self._trn - t1
        if span <= 0:
            return
        f = ((self._ppkn - t1) << 8) // span
        base = self._atr + ((((self._tr - self._atr) >> 4) * f) >> 4)
        baser = self._atrr + ((((self._trr - self._atrr) >> 4) * f) >> 4)
        i = self._pend
        self._bac_ir[i] = self._ppk - base
        self._bac_red[i] = self._ppkr - baser

    def _beat(self, pos):
        last = self._last
        dm = self._dmx
        if last >= 0 and self._lastdm * 8 < dm * WEAK_8 and self._nb > 0:
            ref = self._lastivl if self._lastivl > 0 else self.fs * 24
            if (pos - last) * 160 < ref * 6 or pos - last < self._refr:
                # the previous "beat" was the weaker wave before this systole: replace it
                self._bi = (self._bi - 1) % NBEATS
                self._nb -= 1
                self._ti = (self._ti - 1) % NTIMES
                self._nt -= 1
                if self._pend == self._bi:
                    self._pend = -1
                last = self._last = self._plast
                self._lastf = self._plastf
                self._lastivl = self._plastivl
                self._lastdm = self._plastdm
        if last >= 0 and pos - last < self._refr:
            return  # too soon after the previous beat: a notch or noise
        # A second (diastolic, reflected) wave comes less than half a beat after the systolic
        # one and rises less steeply: a candidate whose steepest slope is below 5/8 of the
        # previous beat's, within 0.6 of the last interval of it, is not a beat. Compared with
        # the previous beat only, so a weaker pulse (or a huge motion "beat") cannot lock the
        # detector out for more than one beat.
        if last >= 0 and dm * 8 < self._lastdm * WEAK_8:
            ref = self._lastivl if self._lastivl > 0 else self.fs * 24
            if (pos - last) * 160 < ref * 6:
                return
        self._plast = last
        self._plastf = self._lastf
        self._plastivl = self._lastivl
        self._plastdm = self._lastdm
        self._lastdm = dm
        sr = self._sref
        # The reference follows the beats, up fast and down slowly; just after an artefact
        # only beats at most twice it count, and slowly (not the movement's "beats").
        if sr == 0:
            sr = dm
        elif self._n - self._mot_n > self._hold:
            sr += (dm - sr) >> 1 if dm > sr else -((sr - dm) >> 2)
        elif dm <= 2 * sr:
            sr += (dm - sr) >> 2
        self._sref = sr
        # Sub-sample peak time (1/16 sample) from a parabola through the peak and its two
        # neighbours: at 50 Hz a whole-sample interval would quantise 180 bpm to 176/182.
        W = self._W
        wave = self._wave
        y0 = wave[pos % W]
        ym = wave[(pos - 1) % W]
        yp = wave[(pos + 1) % W]
        den = ym - 2 * y0 + yp
        frac = (8 * (ym - yp)) // den if den < 0 else 0
        frac = -8 if frac < -8 else 8 if frac > 8 else frac
        ivl = (pos - last) * 16 + frac - self._lastf if last >= 0 else 0
        if ivl > self._max_ivl * 16:
            ivl = 0  # a gap (lost beats), not a rate
        self._lastf = frac
        self._lastivl = ivl
        j = self._ti
        self._tpos[j] = pos
        self._tfr[j] = frac
        self._ti = j + 1 if j + 1 < NTIMES else 0
        if self._nt < NTIMES:
            self._nt += 1
        i = self._bi
        self._bpos[i] = pos
        self._bivl[i] = ivl
        self._bac_ir[i] = self._bac_red[i] = 0  # set at the next upstroke (_amplitude)
        if self._atn < pos:
            self._pend = i
            self._ppk = self._pk
            self._ppkn = pos
            self._ppkr = self._pkr
        self._bdc_ir[i] = self._dsi >> self._ks
        self._bdm[i] = dm
        self._bdc_red[i] = self._dsr >> self._ks
        self._bi = (i + 1) % NBEATS
        if self._nb < NBEATS:
            self._nb += 1
        self._last = pos

    def _rebase(self, n):
        # Move every stored position back by a multiple of the ring length, so that the
        # filtered signal (indexed by n % W) stays where it is.
        shift = n - 2 * self._win
        shift -= shift % self._W
        for i in range(NBEATS):
            self._bpos[i] -= shift
        for i in range(NTIMES):
            self._tpos[i] -= shift
        self._mot_n -= shift
        self._mot_0 -= shift
        if self._last >= 0:
            self._last -= shift
        if self._plast >= 0:
            self._plast -= shift
        self._pkn -= shift
        self._trn -= shift
        self._atn -= shift
        self._ppkn -= shift
        return n - shift

    def result(self):
        """The vitals over the recent beats (see the module doc). Allocates (once a second)."""
        self._due = 0
        off = {"hr": None, "spo2": None, "pi": None, "sqi": 0.0, "probe": "off"}
        if not self._on:
            return off
        fs = self.fs
        n = self._n
        out = {"hr": None, "spo2": None, "pi": None, "sqi": 0.0, "probe": "ok"}
        mot = self._mot_n
        if n - mot <= self._hold:
            return out  # an artefact now or just now: nothing the beats say can be trusted
        # Only beats after the last artefact count (their intervals too).
        recent = [i for i in range(self._nb) if n - self._bpos[i] <= self._win and self._bpos[i] > mot]
        if len(recent) < 5:
            return out
        # Rate: the mean interval over the beats of the last RATE_S seconds (at least the last
        # 5 beats): for an irregular rhythm the rate that counts is beats per minute, which a
        # median of a few intervals does not give.
        ts = sorted(self._tpos[j] * 16 + self._tfr[j] for j in range(self._nt)
                    if n - self._tpos[j] <= self._win and self._tpos[j] > mot)
        k = len(ts)
        # Only beats the quality checks below see (the last NBEATS) enter the mean: a slow
        # motion the artefact detector missed, older than those, would enter the rate unchecked.
        oldest = min(self._bpos[i] for i in recent)
        cut = max(n - RATE_S * fs, oldest) * 16
        first = 0
        while first < k - 5 and ts[first] < cut:
            first += 1
        ts = ts[first:]
        ivls = [ts[j] - ts[j - 1] for j in range(1, len(ts))]
        if len(ivls) < 4:
            return out
        med = _median(ivls) / 16.0  # samples
        newest = ts[-1] // 16
        if n - newest > max(2.5 * fs, 2.2 * med):
            return out  # the pulse has gone (or is being missed): no stale rate
        mean = (ts[-1] - ts[0]) / (16.0 * len(ivls))
        # Rhythm: irregular is allowed (atrial fibrillation: intervals +-25 % give a relative
        # MAD of ~0.13); a missed beat (an interval 1.6x the median) or an extra one (half the
        # median) would bias the mean, so either voids the rate.
        mad = _median([abs(x / 16.0 - med) for x in ivls]) / med
        q_reg = _clamp01((0.35 - mad) / 0.15)
        for x in ivls:
            if x > 25.6 * med or x < 8.0 * med:
                q_reg = 0.0
        # amplitude: perfusion index plausible, beat amplitudes consistent
        scale = 8 * self._L  # filtered units per ADC count
        measured = [i for i in recent if self._bac_ir[i] > 0]  # the newest AC may be pending
        if len(measured) < 3:
            return out
        pis = [self._bac_ir[i] * 100.0 / (scale * self._bdc_ir[i]) for i in measured]
        pi = _median(pis)
        ac_mad = _median([abs(x - pi) for x in pis]) / pi if pi > 0 else 1.0
        q_amp = min(_clamp01((pi - 0.03) / 0.07), _clamp01((0.5 - ac_mad) / 0.3))
        # Motion: the beats suddenly several times larger (or smaller) than the perfusion
        # seen while the signal was good. Periodic motion can be as regular and smooth as a
        # pulse, so rhythm and shape alone do not catch it; a jump in amplitude does. Two
        # such beats among the recent ones void the second.
        ref = self._pi_ref
        if ref is not None:
            odd = 0
            for x in pis:
                if not 0.4 * ref <= x <= 2.5 * ref:
                    odd += 1
            if odd >= 2:
                q_amp = 0.0
        # The same on the upstroke slopes, known at once (a beat's AC waits for the next
        # trough) and without a reference: a motion growing under the artefact limit makes
        # "beats" several times steeper than the pulse's before the PI test can see them.
        dmm = _median([self._bdm[i] for i in recent])
        odd = 0
        for i in recent:
            if not 0.4 * dmm <= self._bdm[i] <= 2.5 * dmm:
                odd += 1
        if odd >= 2:
            q_amp = 0.0
        # A second wave as tall and as steep as the systolic one, half a beat later, gets past
        # the detector: the "beats" then alternate strong, weak, strong... The stronger ones
        # are the pulse: the rate is half, and the shape is compared between them.
        byp = sorted(recent, key=lambda i: self._bpos[i])
        dms = [self._bdm[i] for i in byp[-8:]]
        if _alternating(dms) and 2 * mean <= self._max_ivl:
            # Halved only to a rate the detector could count (a strong-to-strong interval
            # over 2 s would be a gap): by chance a 50 bpm pulse alternates too, never to 25.
            mean *= 2
            med *= 2
            top = min(dms[0], dms[1])
            byp = [i for i in byp[-8:] if self._bdm[i] > top]
        q_shape = self._shape(byp, int(med))
        sqi = min(q_reg, q_amp, q_shape)
        out["sqi"] = sqi
        if sqi < SQI_MIN:
            self._bad += 1
            if self._bad >= REF_RESET_S:
                self._pi_ref = None  # a lasting change of perfusion, not a burst: relearn
            return out
        self._bad = 0
        # the reference follows good readings slowly (time constant ~20 s)
        self._pi_ref = pi if ref is None else ref + (pi - ref) * 0.05
        hr = 60.0 * fs / mean
        if not 25 <= hr <= 250:
            return out
        out["hr"] = hr
        out["pi"] = pi
        rs = []
        for i in measured:
            num = self._bac_red[i] * self._bdc_ir[i]
            den = self._bac_ir[i] * self._bdc_red[i]
            if num > 0 and den > 0:
                rs.append(num / den)
        if len(rs) >= 3:
            r = _median(rs)
            r_mad = _median([abs(x - r) for x in rs]) / r
            if r_mad <= 0.15:  # beats disagree on R (motion): no SpO2
                out["spo2"] = spo2_from_r(r)
        return out

    def _shape(self, recent, ivl):
        """Mean Pearson correlation of consecutive beats' waveforms, mapped to 0..1 (0 when
        fewer than two beats lie in the kept signal). Each beat: 0.8 interval centred on its
        peak, at most ~32 points (a stride), values shifted down to 11 bits so that all the
        sums stay small ints: a float is a heap object, and this runs every second."""
        n = self._n
        W = self._W
        a = (ivl * 2) // 5
        pos = sorted(self._bpos[i] for i in recent if self._bpos[i] - a > n - W and self._bpos[i] + a <= n)
        if len(pos) < 2:
            return 0.0
        wave = self._wave
        step = (2 * a) // 32 + 1
        big = 1
        for p in pos:
            for t in range(p - a, p + a + 1, step):
                x = wave[t % W]
                if x > big:
                    big = x
                elif -x > big:
                    big = -x
        sh = 0
        while (big >> sh) >= 2048:
            sh += 1
        total = 0.0
        pairs = 0
        for j in range(1, len(pos)):
            p0 = pos[j - 1] - a
            p1 = pos[j] - a
            sx = sy = sxx = syy = sxy = m = 0
            for t in range(0, 2 * a + 1, step):
                x = wave[(p0 + t) % W] >> sh
                y = wave[(p1 + t) % W] >> sh
                sx += x
                sy += y
                sxx += x * x
                syy += y * y
                sxy += x * y
                m += 1
            vx = sxx - sx * sx / m
            vy = syy - sy * sy / m
            pairs += 1
            if vx > 0 and vy > 0:
                total += (sxy - sx * sy / m) / sqrt(vx * vy)
        c = total / pairs
        return _clamp01((c - 0.6) / 0.3)
