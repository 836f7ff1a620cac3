"""Simulated sensors at the vitals level: a patient whose readings follow a scenario.

``Patient(seed, scenario).sample(t_s)`` returns the vitals at ``t_s`` seconds after the
scenario started, as the dict ``bedside.reading.Encoder.reading`` takes::

    {"hr": bpm, "spo2": %, "temp": degC, "pi": %, "sqi": 0..1, "probe": "ok"|"off"|"fault"}

(hr, spo2 and pi are None unless probe is "ok"). It is a pure function of (seed, scenario,
t_s): time is passed in, noise comes from a hash of (seed, channel, time knot), not from a
random generator, so any two calls with the same arguments agree. Every value stays inside
the contract's plausible ranges.

Noise: smooth value noise (random knots, smoothstep between them): slow wander on every
channel, plus beat-to-beat variability and respiratory sinus arrhythmia on the pulse and a
faster component on SpO2. Plausible variability without state.

A scenario is a list of phases (dicts), in any order::

    {"at_s": 30, "ramp_s": 90, "spo2": 84, "hr": 110}   # ramp linearly to these targets
    {"at_s": 240, "ramp_s": 60, "spo2": "base"}          # back to the patient's baseline
    {"at_s": 30, "probe": "off"}                         # probe state, a step
    {"at_s": 60, "power": "off", "for_s": 30}            # device dies; omit for_s: forever
    {"at_s": 60, "network": "down", "for_s": 30}         # network down for 30 s

Targets (hr, spo2, temp, pi, sqi) hold until a later phase changes them. ``power`` and
``network`` are events: ``Patient.events`` lists them as ``(at_s, kind, for_s)`` and the app
acts on them. ``SCENARIOS`` holds the named scenarios; ``scenario`` in a board's config may
be such a name, a list of phases, or ``{"name"|"phases": .., "start_s": .., "baseline": ..}``.
"""

from math import sin

CHANNELS = ("hr", "spo2", "temp", "pi", "sqi")
RANGES = {"hr": (20, 300), "spo2": (50, 100), "temp": (25.0, 45.0), "pi": (0.0, 30.0), "sqi": (0.0, 1.0)}
PROBE_STATES = ("ok", "off", "fault")

SCENARIOS = {
    "stable": [],
    "desaturation": [
        {"at_s": 30, "ramp_s": 90, "spo2": 84, "hr": 112},
        {"at_s": 240, "ramp_s": 60, "spo2": "base", "hr": "base"},
    ],
    "tachycardia": [
        {"at_s": 30, "ramp_s": 60, "hr": 138},
        {"at_s": 240, "ramp_s": 60, "hr": "base"},
    ],
    "bradycardia": [
        {"at_s": 30, "ramp_s": 60, "hr": 42},
        {"at_s": 240, "ramp_s": 60, "hr": "base"},
    ],
    "fever": [
        {"at_s": 30, "ramp_s": 180, "temp": 39.4, "hr": 104},
    ],
    "probe_off": [
        {"at_s": 30, "probe": "off"},
        {"at_s": 75, "probe": "ok"},
    ],
    "power_off": [
        {"at_s": 60, "power": "off", "for_s": 30},
    ],
    "network_outage": [
        {"at_s": 60, "network": "down", "for_s": 30},
    ],
}

_PHASE_KEYS = ("at_s", "ramp_s", "probe", "power", "network", "for_s") + CHANNELS
_M32 = 0xFFFFFFFF


def _hash(seed, ch, k):
    """A 32-bit integer hash of (seed, channel, knot) mapped to [-1, 1)."""
    x = (seed * 0x9E3779B1 + ch * 0x85EBCA77 + k * 0xC2B2AE3D + 0x27D4EB2F) & _M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & _M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & _M32
    x ^= x >> 16
    return x / 2147483648.0 - 1.0


def _num(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("%s must be a number, not %r" % (what, v))
    return v


def phases(spec):
    """Normalise a scenario spec into ``(phases, start_s, baseline)``; raise ValueError
    (naming the phase and key) for anything outside the format in the module docstring."""
    start_s = 0
    baseline = {}
    if spec is None:
        spec = []
    if isinstance(spec, dict):
        start_s = _num(spec.get("start_s", 0), "start_s")
        baseline = spec.get("baseline") or {}
        for k in baseline:
            if k not in CHANNELS:
                raise ValueError("baseline: unknown key %r" % (k,))
            _num(baseline[k], "baseline." + k)
        for k in spec:
            if k not in ("name", "phases", "start_s", "baseline"):
                raise ValueError("scenario: unknown key %r" % (k,))
        listed = list(spec.get("phases") or [])
        name = spec.get("name")
        spec = (phases(name)[0] if name is not None else []) + listed
    elif isinstance(spec, str):
        if spec not in SCENARIOS:
            raise ValueError("unknown scenario %r (known: %s)" % (spec, ", ".join(sorted(SCENARIOS))))
        spec = SCENARIOS[spec]
    out = []
    for i, ph in enumerate(spec):
        where = "phase %d" % (i + 1)
        if not isinstance(ph, dict):
            raise ValueError("%s: not a table" % where)
        for k in ph:
            if k not in _PHASE_KEYS:
                raise ValueError("%s: unknown key %r" % (where, k))
        if "at_s" not in ph or _num(ph["at_s"], where + ".at_s") < 0:
            raise ValueError("%s: at_s (>= 0) is required" % where)
        if _num(ph.get("ramp_s", 0), where + ".ramp_s") < 0:
            raise ValueError("%s: ramp_s must be >= 0" % where)
        for k in CHANNELS:
            if k in ph and ph[k] != "base":
                lo, hi = RANGES[k]
                if not lo <= _num(ph[k], where + "." + k) <= hi:
                    raise ValueError("%s: %s=%r outside %r..%r" % (where, k, ph[k], lo, hi))
        if "probe" in ph and ph["probe"] not in PROBE_STATES:
            raise ValueError("%s: probe must be one of %s" % (where, ", ".join(PROBE_STATES)))
        if "power" in ph and ph["power"] != "off":
            raise ValueError('%s: power must be "off"' % where)
        if "network" in ph and ph["network"] != "down":
            raise ValueError('%s: network must be "down"' % where)
        if "for_s" in ph:
            if "power" not in ph and "network" not in ph:
                raise ValueError("%s: for_s only goes with power or network" % where)
            if _num(ph["for_s"], where + ".for_s") <= 0:
                raise ValueError("%s: for_s must be > 0" % where)
        out.append(ph)
    return out, start_s, baseline


class Patient:
    """One simulated patient (and the device's events). ``seed``: any int."""

    def __init__(self, seed=0, scenario=None, baseline=None):
        plist, start_s, base_over = phases(scenario)
        self.seed = seed = int(seed) & _M32
        h = lambda ch: (_hash(seed, ch, 0x7FFFFFFF) + 1) / 2  # 0..1, fixed per patient
        self.baseline = {
            "hr": 62 + 30 * h(1),
            "spo2": 95.0 + 3.5 * h(2),
            "temp": 36.4 + 0.8 * h(3),
            "pi": 1.5 + 4.5 * h(4),
            "sqi": 0.86 + 0.08 * h(5),
        }
        self.baseline.update(base_over)
        if baseline:
            self.baseline.update(baseline)
        self._resp = 3.5 + 1.5 * h(6)  # breathing period, s, for sinus arrhythmia
        self.rssi = int(-45 - 25 * h(7))  # dBm, steady per bed
        # Per channel: [(t0, t1, target)] in time order; the value before the first
        # segment is the baseline. Evaluated lazily, so later phases start from wherever
        # the previous ramp had got to.
        self._segs = dict((ch, []) for ch in CHANNELS)
        self._probe = []  # [(t, state)]
        self.events = []  # [(at_s, "power" | "network", for_s or None)]
        plist = sorted(plist, key=lambda p: p["at_s"])
        for ph in plist:
            t0 = ph["at_s"] + start_s
            for ch in CHANNELS:
                if ch in ph:
                    target = self.baseline[ch] if ph[ch] == "base" else ph[ch]
                    self._segs[ch].append((t0, t0 + ph.get("ramp_s", 0), target))
            if "probe" in ph:
                self._probe.append((t0, ph["probe"]))
            if "power" in ph:
                self.events.append((t0, "power", ph.get("for_s")))
            if "network" in ph:
                self.events.append((t0, "network", ph.get("for_s")))
        self._knots = {}  # noise key -> (knot, a, b): a cache; results do not depend on it

    def target(self, ch, t):
        """The scenario's value of channel ``ch`` at ``t`` s, before noise."""
        v = self.baseline[ch]
        for t0, t1, target in self._segs[ch]:
            if t < t0:
                break
            if t >= t1:
                v = target
            else:
                v = v + (target - v) * (t - t0) / (t1 - t0)
        return v

    def probe(self, t):
        state = "ok"
        for t0, s in self._probe:
            if t < t0:
                break
            state = s
        return state

    def _noise(self, key, period, t):
        """Value noise in [-1, 1) for channel ``key`` with knots every ``period`` s."""
        u = t / period
        k = int(u)
        c = self._knots.get(key)
        if c is None or c[0] != k:
            c = (k, _hash(self.seed, key, k), _hash(self.seed, key, k + 1))
            self._knots[key] = c
        f = u - k
        a = c[1]
        return a + (c[2] - a) * f * f * (3 - 2 * f)

    def sample(self, t_s):
        """The vitals at ``t_s`` (s since the scenario started, >= 0); see module doc."""
        t = t_s if t_s > 0 else 0
        n = self._noise
        target = self.target
        temp = _clip(target("temp", t) + 0.1 * n(30, 300, t), "temp")
        probe = self.probe(t) if self._probe else "ok"
        if probe != "ok":
            return {"hr": None, "spo2": None, "temp": temp, "pi": None, "sqi": 0.0, "probe": probe}
        return {
            # slow wander, beat-to-beat variability, respiratory sinus arrhythmia
            "hr": _clip(target("hr", t) + 4.0 * n(10, 30, t) + 2.5 * n(11, 3, t)
                        + 1.5 * sin(6.2832 * t / self._resp), "hr"),
            "spo2": _clip(target("spo2", t) + 0.8 * n(20, 40, t) + 0.5 * n(21, 4, t), "spo2"),
            "temp": temp,
            "pi": _clip(target("pi", t) * (1 + 0.18 * n(40, 15, t)), "pi"),
            "sqi": _clip(target("sqi", t) + 0.04 * n(50, 6, t), "sqi"),
            "probe": "ok",
        }

    def power_on(self, t):
        """False while a ``power = "off"`` event covers ``t``."""
        return not self._covered("power", t)

    def network_up(self, t):
        """False while a ``network = "down"`` event covers ``t``."""
        return not self._covered("network", t)

    def _covered(self, kind, t):
        for t0, k, for_s in self.events:
            if k == kind and t >= t0 and (for_s is None or t < t0 + for_s):
                return True
        return False


def _clip(v, ch):
    lo, hi = RANGES[ch]
    return lo if v < lo else hi if v > hi else v
