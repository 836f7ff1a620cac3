"""The alarm engine: pure state machines, one per (bed, alarm code), with time passed in.

Who calls it: ``gateway.sinks.alarms`` (the shell), under one lock, with every reading,
device status, manual observation, command and a 1 s tick. Each call returns the
``AlarmEvent``s and ``News2Update``s it caused; the engine does no I/O and reads no clock.

Lifecycle of one alarm (IEC 60601-1-8 concepts, docs/clinical.md "Alarm model")::

    (none) --condition held for its delay--> active --ack--> acked
    active/acked --higher level--> active (escalated: an acknowledgement is undone)
    active/acked --condition past the hysteresis--> cleared, or, when a latching level was
        reached and not acknowledged since, latched --ack--> cleared
    acked, condition still present --every remind_s--> reminder

Times: a reading's conditions run on its own clock (``ts`` when ``tq`` = 1, else receipt),
so delays hold even for readings replayed from a device's outbox after an outage; device
offline and reminders run on the gateway's clock (``now_ms``). All times are epoch ms.

A bed takes part only while a patient is admitted to it and a device is registered to it:
readings from unassigned devices are stored but raise no patient alarms.
"""

from __future__ import annotations

import copy
import statistics
from collections import deque
from typing import TYPE_CHECKING

import msgspec

from ..contract import WARD_LEVEL, Reading, Status
from . import news2 as news2_score
from .rules import PRIORITY_RANK, RULES, Layer, Level, Limits, Rule, Setting, levels, past

if TYPE_CHECKING:  # the engine only asks it placement(device); the file behind it is the shell's
    from ..registry import Registry

MARK = {"high": "***", "medium": "**", "low": "*"}
# A synced device clock this far ahead of the gateway is wrong (a reading cannot come from
# the future; NTP keeps clocks within a second). Behind is normal for a replay, but not for
# long: an outbox replays within seconds.
CLOCK_AHEAD_MS = 10_000
CLOCK_BEHIND_MS = 120_000
BEHIND_FOR_MS = 60_000
LABEL = {"spo2": "SpO2", "hr": "Pulse", "temp": "Temp", "sqi": "SQI", "batt": "Battery"}


class Alarm(msgspec.Struct):
    """One alarm instance, as displays and the database see it. Mutable inside the engine."""

    id: str
    ward: str
    bed: str
    device: str
    code: str
    kind: str
    priority: str
    state: str  # active | acked | latched | cleared
    message: str
    since_ms: int  # onset of the condition (start of the delay)
    raised_ms: int
    value: float | None = None
    limit: float | None = None
    level: int = 1
    simulated: bool = False
    acked_by: str | None = None
    acked_ms: int | None = None
    latch_pending: bool = False  # a latching level was reached and not acknowledged since
    notice_ms: int = 0  # last raise, escalation, ack or reminder

    def text(self) -> str:
        """A central station's line: ``** w1/03 SpO2 86 < 90 since 10:32:05Z``."""
        mark = "INOP" if self.kind == "technical" else MARK[self.priority]
        since = _hms(self.since_ms)
        sim = " [SIMULATED]" if self.simulated else ""
        return f"{mark} {self.ward}/{self.bed} {self.message} since {since}{sim}"


class AlarmEvent(msgspec.Struct, frozen=True):
    """``event``: raised | escalated | deescalated | acked | reminder | latched | reactivated
    (a latched alarm's condition came back) | cleared."""

    event: str
    at_ms: int
    alarm: Alarm
    reason: str = ""


class News2Update(msgspec.Struct, frozen=True):
    """A NEWS2 result for one bed, to be stored (``news2`` measurement) and published."""

    ward: str
    bed: str
    at_ms: int
    result: news2_score.News2
    simulated: bool


class ManualObs(msgspec.Struct, frozen=True):
    """Observations a nurse enters: respiration /min, systolic BP mmHg, ACVPU, oxygen."""

    rr: float | None = None
    sbp: float | None = None
    acvpu: str | None = None
    o2: bool | None = None
    at_ms: int = 0
    user: str = ""


class EngineError(Exception):
    """A command the engine refuses (unknown alarm, bed occupied...); the text says why."""


def _hms(ms: int) -> str:
    s = (ms // 1000) % 86400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}Z"


def _fmt(param: str, value: float | None) -> str:
    if value is None:
        return "--"
    if param == "temp":
        return f"{value:.1f}"
    if param == "sqi":
        return f"{value:.2f}"
    if param == "lag":
        return f"{value:.1f}"
    return f"{value:g}"


class _Track:
    """Per-level condition state of one (bed, code): when the condition began, by the
    readings' clock and by the gateway's, and whether the level is on."""

    __slots__ = ("onset", "onset_rx", "on")

    def __init__(self, n: int):
        self.onset: list[int | None] = [None] * n
        self.onset_rx: list[int | None] = [None] * n
        self.on = [False] * n


def step(op: str, lv: list[Level], tr: _Track, value: float | None, t: int, now: int | None = None) -> int:
    """Advance one rule's levels with ``value`` at time ``t`` (ms); return the active level.

    0 = no alarm condition, i = level i (1-based) is the highest one on. ``None`` (value
    not measured, e.g. probe off) restarts pending delays but holds an active level: no
    reading is no evidence of recovery. ``now`` is the gateway's receipt time (default
    ``t``): a level's delay is over once the condition has held that long by the readings'
    clock *or* since it was first received. Replayed history can shorten a delay; a device's
    clock can never lengthen it.
    """
    now = t if now is None else now
    top = 0
    for i, level in enumerate(lv):
        if value is None:
            tr.onset[i] = tr.onset_rx[i] = None
        elif tr.on[i]:
            if not past(op, value, level.clear):
                tr.on[i] = False
                tr.onset[i] = tr.onset_rx[i] = None
        elif past(op, value, level.limit):
            if tr.onset[i] is None:
                tr.onset[i], tr.onset_rx[i] = t, now
            delay = level.delay_s * 1000
            if t - tr.onset[i] >= delay or now - tr.onset_rx[i] >= delay:  # type: ignore[operator]
                tr.on[i] = True
        else:
            tr.onset[i] = tr.onset_rx[i] = None
        if tr.on[i]:
            top = i + 1
    return top


class Bed:
    """A bed with an admitted patient: its settings, condition trackers and alarms."""

    def __init__(self, ward: str, bed: str, patient: str, scale: int, overrides: Layer, limits: Limits, now_ms: int):
        self.ward, self.bed, self.patient, self.scale = ward, bed, patient, scale
        self.overrides = overrides
        self.settings: dict[str, Setting] = {}
        self.levels: dict[str, list[Level]] = {}
        self.tracks: dict[str, _Track] = {}
        self.alarms: dict[str, Alarm] = {}
        self.device = ""
        self.simulated = False
        self.last_seen_ms = now_ms  # admit or restart: give the device a full timeout
        self.will = False  # the device's last will (or a clean offline status) arrived
        self.obs: ManualObs | None = None
        self.windows: dict[str, deque] = {p: deque(maxlen=64) for p in ("hr", "spo2", "temp")}
        self.window_t = {p: 0 for p in self.windows}
        self.news2_next_ms = 0
        self.news2_last: tuple | None = None
        self.news2_stored_ms = 0
        self.misplaced = ("", "")  # (ward, device) of the last reading on a wrong ward
        self.last_t = 0  # the previous reading's effective time: they never go backwards
        self.clock_skew_s = 0.0  # the last reading's ts minus its receipt, s
        self.behind_since: int | None = None  # since when the device's clock has read far behind
        self.configure(limits)

    def configure(self, limits: Limits) -> None:
        """(Re)build settings from the limits and the patient's overrides; keeps live alarms."""
        self.settings = limits.settings_for(self.ward, self.bed, self.overrides)
        self.levels = {code: levels(RULES[code], s) for code, s in self.settings.items()}
        old = self.tracks
        self.tracks = {}
        for code, lv in self.levels.items():
            tr = _Track(len(lv))
            if code in old:
                for i in range(min(len(lv), len(old[code].on))):
                    tr.on[i], tr.onset[i], tr.onset_rx[i] = old[code].on[i], old[code].onset[i], old[code].onset_rx[i]
            self.tracks[code] = tr


class Engine:
    """All beds of this gateway instance. See the module docstring for the contract."""

    def __init__(
        self,
        limits: Limits,
        registry: Registry,
        remind_s: float = 120,
        obs_valid_s: float = 12 * 3600,
        news2_every_s: float = 5,
        news2_store_s: float = 60,
        median_s: float = 60,
    ):
        self.limits = limits
        self.registry = registry
        self.remind_ms = int(remind_s * 1000)
        self.obs_valid_ms = int(obs_valid_s * 1000)
        self.news2_every_ms = int(news2_every_s * 1000)
        self.news2_store_ms = int(news2_store_s * 1000)
        self.median_ms = int(median_s * 1000)
        self.beds: dict[tuple[str, str], Bed] = {}
        self.patients: dict[str, tuple[str, str]] = {}
        # Per ward, a bed-like holder (bed id WARD_LEVEL) for alarms about the whole ward.
        self.wards: dict[str, Bed] = {}

    def settings(self, ward: str, bed: str) -> dict[str, Setting]:
        """The settings the bed's alarms run on now: its patient's, or the ward/bed layers'."""
        b = self.beds.get((ward, bed))
        return b.settings if b is not None else self.limits.settings_for(ward, bed)

    # -- patients ---------------------------------------------------------------------------

    def admit(self, ward: str, bed: str, patient: str, scale: int, overrides: Layer, now_ms: int) -> list:
        if patient in self.patients:
            w, b = self.patients[patient]
            raise EngineError(f"patient {patient} is already admitted to {w}/{b}")
        if (ward, bed) in self.beds:
            raise EngineError(f"bed {ward}/{bed} is occupied by {self.beds[(ward, bed)].patient}")
        self.beds[(ward, bed)] = Bed(ward, bed, patient, scale, overrides, self.limits, now_ms)
        self.patients[patient] = (ward, bed)
        return []

    def discharge(self, patient: str, now_ms: int, reason: str = "discharged") -> list:
        """Remove the patient; their bed's alarms end (``cleared`` with the reason)."""
        where = self.patients.pop(patient, None)
        if where is None:
            raise EngineError(f"patient {patient} is not admitted")
        bed = self.beds.pop(where)
        out = []
        for alarm in list(bed.alarms.values()):
            alarm.state = "cleared"
            out.append(AlarmEvent("cleared", now_ms, alarm, reason))
        return out

    def assign(self, patient: str, ward: str, bed: str, now_ms: int) -> list:
        """Move an admitted patient to another bed, keeping scale and limit overrides."""
        if patient not in self.patients:
            raise EngineError(f"patient {patient} is not admitted")
        if (ward, bed) in self.beds:
            raise EngineError(f"bed {ward}/{bed} is occupied by {self.beds[(ward, bed)].patient}")
        old = self.beds[self.patients[patient]]
        out = self.discharge(patient, now_ms, reason=f"moved to {ward}/{bed}")
        self.admit(ward, bed, patient, old.scale, old.overrides, now_ms)
        self.beds[(ward, bed)].obs = old.obs
        return out

    def set_overrides(self, patient: str, overrides: Layer, scale: int | None = None) -> None:
        where = self.patients.get(patient)
        if where is None:
            raise EngineError(f"patient {patient} is not admitted")
        bed = self.beds[where]
        bed.overrides = overrides
        if scale is not None:
            bed.scale = scale
        bed.configure(self.limits)

    # -- inputs -----------------------------------------------------------------------------

    def reading(self, ward: str, r: Reading, now_ms: int) -> list:
        """A validated reading that arrived on ``ward``'s topic."""
        place = self.registry.placement(r.dev)
        if place is None:
            return []
        bed = self.beds.get((place.ward, place.bed))
        if bed is None:
            return []
        out: list = []
        if place.ward != ward:
            # The device reports into another ward's topics: its own bed is not monitored.
            bed.misplaced = (ward, r.dev)
            self._eval(bed, "misconfigured", 1, now_ms, now_ms, out)
            return out
        t = self._reading_time(bed, r, now_ms, out)
        bed.device = r.dev
        bed.simulated = r.sim
        bed.last_seen_ms = now_ms
        bed.will = False
        ok = r.probe == "ok"
        ev = self._eval
        ev(bed, "misconfigured", 0, t, now_ms, out)
        ev(bed, "device_offline", 0, now_ms, now_ms, out)
        ev(bed, "clock_unsynced", 1 - r.tq, now_ms, now_ms, out)
        ev(bed, "probe_off", 0 if ok else 1, t, now_ms, out)
        # Probe off is its own alarm; it supersedes "low signal quality" rather than doubling it.
        ev(bed, "sqi_low", r.sqi if ok else 1.0, t, now_ms, out)
        if r.batt is not None:
            ev(bed, "battery_low", r.batt, t, now_ms, out)
        for code in ("spo2_desat", "spo2_low"):
            ev(bed, code, r.spo2, t, now_ms, out)
        for code in ("hr_extreme_high", "hr_extreme_low", "hr_high", "hr_low"):
            ev(bed, code, r.hr, t, now_ms, out)
        for code in ("temp_high", "temp_low"):
            ev(bed, code, r.temp, t, now_ms, out)
        for param, value in (("hr", r.hr), ("spo2", r.spo2), ("temp", r.temp)):
            # One value per second is enough for a 60 s median at any publishing rate.
            if value is not None and t - bed.window_t[param] >= 1000:
                bed.windows[param].append((t, value))
                bed.window_t[param] = t
        if t >= bed.news2_next_ms:
            bed.news2_next_ms = t + self.news2_every_ms
            self._news2(bed, t, now_ms, out)
        return out

    def _reading_time(self, bed: Bed, r: Reading, now_ms: int, out: list) -> int:
        """The time a reading's conditions run on (epoch ms): its own ``ts``, so a replay is
        judged by when it was measured, but bounded by the gateway's clock: never after its
        receipt, never before the bed's previous reading, and the receipt itself when the
        device's clock is not synced or is wrong (``clock_wrong``: ahead of the gateway by more
        than ``CLOCK_AHEAD_MS``, or behind by more than ``CLOCK_BEHIND_MS`` for longer than
        a replay lasts, ``BEHIND_FOR_MS``)."""
        skew = r.ts - now_ms
        if r.tq != 1 or -CLOCK_BEHIND_MS <= skew:
            bed.behind_since = None
        elif bed.behind_since is None:
            bed.behind_since = now_ms
        wrong = r.tq == 1 and (
            skew > CLOCK_AHEAD_MS or (bed.behind_since is not None and now_ms - bed.behind_since >= BEHIND_FOR_MS)
        )
        bed.clock_skew_s = skew / 1000
        self._eval(bed, "clock_wrong", 1 if wrong else 0, now_ms, now_ms, out)
        t = min(r.ts, now_ms) if r.tq == 1 and "clock_wrong" not in bed.alarms else now_ms
        t = max(t, bed.last_t)
        bed.last_t = t
        return t

    def status(self, ward: str, s: Status, now_ms: int) -> list:
        """A device status or last will. Offline raises device_offline at once."""
        place = self.registry.placement(s.dev)
        if place is None or place.ward != ward:
            return []
        bed = self.beds.get((place.ward, place.bed))
        if bed is None:
            return []
        out: list = []
        bed.device = s.dev
        if s.state == "offline":
            bed.will = True
            self._eval(bed, "device_offline", float("inf"), now_ms, now_ms, out)
        if s.batt is not None:
            self._eval(bed, "battery_low", s.batt, now_ms, now_ms, out)
        return out

    def observe(self, ward: str, bed_id: str, obs: ManualObs, now_ms: int) -> list:
        """Manual observations for a bed; NEWS2 is recomputed at once."""
        bed = self.beds.get((ward, bed_id))
        if bed is None:
            raise EngineError(f"no patient admitted to {ward}/{bed_id}")
        prev = bed.obs
        if prev is not None and now_ms - prev.at_ms < self.obs_valid_ms:
            # A partial entry (say, only a new RR) keeps the other recent values.
            obs = ManualObs(
                rr=obs.rr if obs.rr is not None else prev.rr,
                sbp=obs.sbp if obs.sbp is not None else prev.sbp,
                acvpu=obs.acvpu if obs.acvpu is not None else prev.acvpu,
                o2=obs.o2 if obs.o2 is not None else prev.o2,
                at_ms=obs.at_ms,
                user=obs.user,
            )
        bed.obs = obs
        out: list = []
        bed.news2_last = None  # store the new score even if unchanged
        self._news2(bed, now_ms, now_ms, out)
        return out

    def tick(self, now_ms: int) -> list:
        """Gateway-clock work, about once a second: no-data timeouts and reminders."""
        out: list = []
        for bed in self.beds.values():
            age_s = float("inf") if bed.will else (now_ms - bed.last_seen_ms) / 1000
            self._eval(bed, "device_offline", age_s, now_ms, now_ms, out)
        for bed in self._holders():
            for alarm in bed.alarms.values():
                if alarm.state == "acked" and now_ms - alarm.notice_ms >= self.remind_ms:
                    alarm.notice_ms = now_ms
                    out.append(AlarmEvent("reminder", now_ms, _copy(alarm)))
        return out

    def ward_lag(self, ward: str, lag_s: float | None, simulated: bool, now_ms: int) -> list:
        """The ward's ingest lag in s (``gateway.lag``; None: no synced reading lately) drives
        its ``alarms_delayed`` alarm. Without a value an active alarm holds, as for a bed."""
        holder = self.wards.get(ward)
        if holder is None:
            if lag_s is None:
                return []
            holder = self.wards[ward] = Bed(ward, WARD_LEVEL, "", 1, {}, self.limits, now_ms)
        holder.simulated = simulated
        out: list = []
        self._eval(holder, "alarms_delayed", lag_s, now_ms, now_ms, out)
        return out

    def _holders(self):
        """Every bed with a patient, then every ward's holder of ward-level alarms."""
        yield from self.beds.values()
        yield from self.wards.values()

    def ack(self, alarm_id: str, user: str, now_ms: int) -> list:
        for bed in self._holders():
            for alarm in bed.alarms.values():
                if alarm.id == alarm_id:
                    return self._ack(bed, alarm, user, now_ms)
        raise EngineError(f"no active alarm {alarm_id}")

    def ack_bed(self, ward: str, bed_id: str, user: str, now_ms: int) -> list:
        bed = self.wards.get(ward) if bed_id == WARD_LEVEL else self.beds.get((ward, bed_id))
        if bed is None:
            raise EngineError(f"no patient admitted to {ward}/{bed_id}")
        out: list = []
        for alarm in list(bed.alarms.values()):
            if alarm.state in ("active", "latched"):
                out += self._ack(bed, alarm, user, now_ms)
        return out

    def active(self, ward: str | None = None, bed: str | None = None) -> list[Alarm]:
        """Alarms not yet cleared, highest priority first, then oldest first."""
        out = [
            a
            for b in self._holders()
            if (ward is None or b.ward == ward) and (bed is None or b.bed == bed)
            for a in b.alarms.values()
        ]
        out.sort(key=lambda a: (-PRIORITY_RANK[a.priority], a.raised_ms))
        return out

    def restore(self, alarm: Alarm) -> None:
        """Put back an alarm saved before a restart (its bed must be admitted again first)."""
        bed = self.beds.get((alarm.ward, alarm.bed))
        if bed is None or alarm.code not in bed.tracks:
            return
        bed.alarms[alarm.code] = alarm
        bed.device = bed.device or alarm.device
        if alarm.state != "latched":
            tr = bed.tracks[alarm.code]
            for i in range(min(alarm.level, len(tr.on))):
                tr.on[i] = True

    # -- the state machine ------------------------------------------------------------------

    def _eval(self, bed: Bed, code: str, value, t: int, now_ms: int, out: list) -> None:
        lv = bed.levels.get(code)
        if lv is None:  # disabled for this bed
            return
        level = step(RULES[code].op, lv, bed.tracks[code], value, t, now_ms)
        alarm = bed.alarms.get(code)
        if alarm is None:
            if level:
                onset = bed.tracks[code].onset[0]
                alarm = Alarm(
                    id=f"{bed.ward}/{bed.bed}/{code}/{now_ms}",
                    ward=bed.ward, bed=bed.bed, device=bed.device, code=code, kind=RULES[code].kind,
                    priority=lv[level - 1].priority, state="active", message="",
                    since_ms=onset if onset is not None else t, raised_ms=now_ms, level=level,
                    simulated=bed.simulated, latch_pending=any(x.latch for x in lv[:level]), notice_ms=now_ms,
                )
                self._describe(bed, alarm, RULES[code], lv[level - 1], value)
                bed.alarms[code] = alarm
                out.append(AlarmEvent("raised", now_ms, _copy(alarm)))
            return
        if level:
            self._describe(bed, alarm, RULES[code], lv[level - 1], value)
            returned = alarm.state == "latched"
            if returned:
                alarm.state = "active" if alarm.acked_by is None else "acked"
            if level > alarm.level:
                alarm.level, alarm.priority = level, lv[level - 1].priority
                alarm.state, alarm.acked_by, alarm.acked_ms = "active", None, None
                alarm.latch_pending = alarm.latch_pending or any(x.latch for x in lv[:level])
                alarm.notice_ms = now_ms
                out.append(AlarmEvent("escalated", now_ms, _copy(alarm)))
            elif level < alarm.level:
                alarm.level, alarm.priority = level, lv[level - 1].priority
                out.append(AlarmEvent("deescalated", now_ms, _copy(alarm)))
            elif returned:
                out.append(AlarmEvent("reactivated", now_ms, _copy(alarm)))
        elif alarm.state != "latched":
            # value and message keep the alarming reading: that is what the alarm was about.
            if alarm.latch_pending:
                alarm.state = "latched"
                out.append(AlarmEvent("latched", now_ms, _copy(alarm)))
            else:
                alarm.state = "cleared"
                del bed.alarms[code]
                out.append(AlarmEvent("cleared", now_ms, alarm))

    def _ack(self, bed: Bed, alarm: Alarm, user: str, now_ms: int) -> list:
        if alarm.state == "acked":
            return []
        alarm.acked_by, alarm.acked_ms, alarm.latch_pending = user, now_ms, False
        alarm.notice_ms = now_ms
        if alarm.state == "latched":
            alarm.state = "cleared"
            del bed.alarms[alarm.code]
            return [AlarmEvent("acked", now_ms, _copy(alarm)), AlarmEvent("cleared", now_ms, alarm)]
        alarm.state = "acked"
        return [AlarmEvent("acked", now_ms, _copy(alarm))]

    def _describe(self, bed: Bed, alarm: Alarm, rule: Rule, level: Level, value) -> None:
        """Value, limit and the central-station message for the alarm's current level."""
        code = rule.code
        previous = alarm.value
        alarm.value = None if value is None or value == float("inf") else value
        alarm.limit = level.limit
        alarm.device = bed.device or alarm.device
        if rule.param in LABEL:
            op = "<" if rule.op == "<" else ">"
            shown = value if value is not None else previous
            alarm.message = f"{LABEL[rule.param]} {_fmt(rule.param, shown)} {op} {_fmt(rule.param, level.limit)}"
            if value is None:
                alarm.message += " (no current value)"
        elif code == "probe_off":
            alarm.message = "SpO2 probe off"
        elif code == "device_offline":
            alarm.limit = None
            alarm.message = "Device offline (status offline or last will)" if bed.will else f"No data for {level.limit:g} s"
        elif code == "alarms_delayed":
            alarm.message = (
                f"Alarms delayed: readings reach the gateway {_fmt('lag', previous if value is None else value)} s "
                f"after they are measured (> {level.limit:g} s)"
            )
        elif code == "clock_wrong":
            alarm.limit = None
            alarm.message = f"Device clock wrong: {bed.clock_skew_s:+.0f} s against the gateway"
        elif code == "clock_unsynced":
            alarm.limit = None
            alarm.message = f"Clock not synced for {level.delay_s:g} s"
        elif code == "misconfigured":
            alarm.limit = None
            ward, device = bed.misplaced
            alarm.message = f"Device {device} publishing on ward {ward}, registered to {bed.ward}/{bed.bed}"
        elif code == "news2":
            result = bed.news2_last[3] if bed.news2_last else None
            band = result.band if result else ""
            partial = f", partial: no {', '.join(result.missing)}" if result and result.partial else ""
            alarm.message = f"NEWS2 {_fmt('news2', value)} ({band}{partial})"
        elif code == "news2_single3":
            result = bed.news2_last[3] if bed.news2_last else None
            params = [p for p, v in (result.subscores.items() if result else []) if v == 3]
            alarm.message = f"NEWS2 parameter scoring 3: {', '.join(params)}"

    def _news2(self, bed: Bed, t: int, now_ms: int, out: list) -> None:
        horizon = t - self.median_ms
        med = {}
        for param, window in bed.windows.items():
            while window and window[0][0] < horizon:
                window.popleft()
            # The median of the last minute stands for a nurse's spot reading: one noisy
            # sample at a band edge does not move the score.
            med[param] = statistics.median(v for _, v in window) if window else None
        obs = bed.obs if bed.obs is not None and now_ms - bed.obs.at_ms < self.obs_valid_ms else None
        result = news2_score.score(
            news2_score.Observations(
                rr=obs.rr if obs else None,
                spo2=med["spo2"],
                scale=2 if bed.scale == 2 else 1,
                o2=obs.o2 if obs else None,
                sbp=obs.sbp if obs else None,
                pulse=med["hr"],
                acvpu=obs.acvpu if obs else None,  # type: ignore[arg-type]
                temp=med["temp"],
            )
        )
        key = (result.score, result.band, result.partial)
        changed = bed.news2_last is None or bed.news2_last[:3] != key
        bed.news2_last = (*key, result)
        self._eval(bed, "news2", result.score, t, now_ms, out)
        self._eval(bed, "news2_single3", 1 if result.single3 else 0, t, now_ms, out)
        if changed or now_ms - bed.news2_stored_ms >= self.news2_store_ms:
            bed.news2_stored_ms = now_ms
            out.append(News2Update(bed.ward, bed.bed, now_ms, result, bed.simulated))


def _copy(alarm: Alarm) -> Alarm:
    # An event carries the alarm as it was then; the live one changes later.
    return copy.copy(alarm)
