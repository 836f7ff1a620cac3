"""Alarm rules: what each alarm code watches, its default limits, and per-ward/bed/patient overrides.

Defaults are the adult limits of docs/clinical.md ("Default adult limits"); a value marked
"project default" there, or chosen here where docs/clinical.md gives none, says so beside it.
Every rule is a list of *levels* (ascending severity), each a threshold test with its own
priority, condition delay, hysteresis (``clear``) and latching; an alarm's priority is that
of its highest active level, so "probe off, medium after 60 s" and "battery < 20 % low,
< 10 % medium" are one alarm that escalates.

Overrides come from a TOML limits file (``[alarms] limits_file``)::

    [default.spo2_low]         # every ward
    limit = 88
    clear = 90

    [ward.w1.hr_high]          # one ward
    limit = 130
    clear = 125

    [ward.w1.bed.03.temp_high] # one bed of that ward
    delay_s = 120

and per patient from ``wardwatch patients admit --limit spo2_low.limit=85`` (kept in SQLite,
dropped at discharge). Later layers win key by key: built-in < default < ward < bed < patient.
Errors name the file, line and key. Pure; who calls it: the gateway at start-up, the
command handler (patient limits), and the engine (``settings_for``).
"""

from __future__ import annotations

import tomllib
from typing import Literal

import msgspec

from ..tomlkeys import error_key, error_message, line_of

Priority = Literal["low", "medium", "high"]
# The one priority order of the project: engine, alarm load report and displays sort by it.
PRIORITIES: tuple[Priority, ...] = ("low", "medium", "high")
PRIORITY_RANK = {p: rank for rank, p in enumerate(PRIORITIES, 1)}


class LimitsError(ValueError):
    """A bad limit setting; the message names the key (and, for files, the line)."""


class Setting(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One rule's configurable values; unset (None) keys fall through to the layer below.

    ``limit``/``clear`` are in the parameter's unit; ``delay_s`` is the condition delay;
    ``escalate_*`` describe the second level where the rule has one.
    """

    enabled: bool | None = None
    limit: float | None = None
    clear: float | None = None
    delay_s: float | None = None
    priority: Priority | None = None
    latch: bool | None = None
    escalate_limit: float | None = None
    escalate_clear: float | None = None
    escalate_s: float | None = None
    escalate_priority: Priority | None = None

    def over(self, base: "Setting") -> "Setting":
        """This setting's keys on top of ``base``."""
        mine = msgspec.structs.asdict(self)
        merged = {k: (v if v is not None else getattr(base, k)) for k, v in mine.items()}
        return Setting(**merged)


class Level(msgspec.Struct, frozen=True):
    """One severity level: on when ``value <op> limit`` holds for ``delay_s``; off at ``clear``."""

    priority: Priority
    limit: float
    clear: float
    delay_s: float
    latch: bool


class Rule(msgspec.Struct, frozen=True):
    """An alarm code: the parameter it watches, how it compares, and its default setting.

    ``op`` is ``<`` (alarm below the limit, clears at value >= clear), ``>`` (above, clears
    at <= clear) or ``>=`` (at or above, clears below clear; used for scores and flags).
    ``escalate`` is "value" (a second threshold) or "time" (same test, held ``escalate_s``).
    """

    code: str
    kind: Literal["physiological", "technical"]
    param: str
    op: Literal["<", ">", ">="]
    default: Setting
    escalate: Literal["", "value", "time"] = ""


def _s(**kw) -> Setting:
    return Setting(enabled=True, **kw)


# The codes in the order a central station lists them. Physiological defaults: docs/clinical.md.
RULES: dict[str, Rule] = {
    r.code: r
    for r in (
        Rule("spo2_desat", "physiological", "spo2", "<", _s(limit=80, clear=85, delay_s=5, priority="high", latch=True)),
        Rule("spo2_low", "physiological", "spo2", "<", _s(limit=90, clear=92, delay_s=15, priority="medium", latch=False)),
        Rule("hr_extreme_high", "physiological", "hr", ">", _s(limit=150, clear=145, delay_s=5, priority="high", latch=True)),
        Rule("hr_extreme_low", "physiological", "hr", "<", _s(limit=40, clear=45, delay_s=5, priority="high", latch=True)),
        Rule("hr_high", "physiological", "hr", ">", _s(limit=120, clear=115, delay_s=10, priority="medium", latch=False)),
        Rule("hr_low", "physiological", "hr", "<", _s(limit=50, clear=55, delay_s=10, priority="medium", latch=False)),
        Rule("temp_high", "physiological", "temp", ">", _s(limit=39.0, clear=38.8, delay_s=60, priority="low", latch=False)),
        Rule("temp_low", "physiological", "temp", "<", _s(limit=35.0, clear=35.2, delay_s=60, priority="low", latch=False)),
        # NEWS2: aggregate >= 5 medium, >= 7 high (RCP); no delay, clears below the band.
        # High latches like every high-priority alarm (issue 4: "latching for high priority").
        Rule(
            "news2", "physiological", "news2", ">=",
            _s(limit=5, clear=5, delay_s=0, priority="medium", latch=False,
               escalate_limit=7, escalate_clear=7, escalate_priority="high"),
            escalate="value",
        ),
        Rule("news2_single3", "physiological", "news2_single3", ">=", _s(limit=1, clear=1, delay_s=0, priority="low", latch=False)),
        # Technical. Probe off: low after 10 s, medium after 60 s (project default, docs/clinical.md).
        Rule(
            "probe_off", "technical", "probe_off", ">=",
            _s(limit=1, clear=1, delay_s=10, priority="low", latch=False, escalate_s=60, escalate_priority="medium"),
            escalate="time",
        ),
        Rule("sqi_low", "technical", "sqi", "<", _s(limit=0.5, clear=0.6, delay_s=30, priority="low", latch=False)),
        # Offline: last will, or no reading for limit seconds (30, docs/clinical.md); see engine.tick.
        Rule("device_offline", "technical", "offline", ">=", _s(limit=30, clear=30, delay_s=0, priority="medium", latch=False)),
        Rule(
            "battery_low", "technical", "batt", "<",
            _s(limit=20, clear=25, delay_s=0, priority="low", latch=False,
               escalate_limit=10, escalate_clear=15, escalate_priority="medium"),
            escalate="value",
        ),
        # A synced clock far off the gateway's (engine._reading_time); low like clock not synced:
        # alarms then run on receipt time, the trend is what suffers (project default).
        Rule("clock_wrong", "technical", "clock_wrong", ">=", _s(limit=1, clear=1, delay_s=0, priority="low", latch=False)),
        # tq = 0 for 5 min (project default, docs/clinical.md).
        Rule("clock_unsynced", "technical", "unsynced", ">=", _s(limit=1, clear=1, delay_s=300, priority="low", latch=False)),
        # Not in docs/clinical.md (project default). A whole ward's alarms reach displays late:
        # readings arrive more than 5 s after they were measured (median over the ward's
        # devices); medium like device offline, whose consequence (alarms missing) it shares.
        Rule("alarms_delayed", "technical", "lag", ">", _s(limit=5, clear=2, delay_s=0, priority="medium", latch=False)),
        # Not in docs/clinical.md. Medium: the registered bed gets none of this device's readings,
        # the same consequence as device offline, which is medium.
        Rule("misconfigured", "technical", "misplaced", ">=", _s(limit=1, clear=1, delay_s=0, priority="medium", latch=False)),
    )
}


def levels(rule: Rule, s: Setting) -> list[Level]:
    """The rule's levels (ascending severity) under the merged setting ``s``."""
    assert s.limit is not None and s.clear is not None and s.priority is not None
    delay = s.delay_s or 0.0
    latch = s.latch if s.latch is not None else s.priority == "high"
    out = [Level(s.priority, s.limit, s.clear, delay, latch)]
    if rule.escalate and s.escalate_priority is not None:
        if rule.escalate == "value" and s.escalate_limit is not None and s.escalate_clear is not None:
            out.append(Level(s.escalate_priority, s.escalate_limit, s.escalate_clear, delay, s.escalate_priority == "high"))
        elif rule.escalate == "time" and s.escalate_s is not None:
            out.append(Level(s.escalate_priority, s.limit, s.clear, s.escalate_s, s.escalate_priority == "high"))
    return out


def past(op: str, value: float, threshold: float) -> bool:
    """Whether ``value`` is past ``threshold`` on the alarm side of a rule whose ``op`` is
    ``<``, ``>`` or ``>=``. A level is on past its limit, and clears once not past ``clear``."""
    return value < threshold if op == "<" else value > threshold if op == ">" else value >= threshold


# The parameters a bedside display colours: the device's vital signs.
VITALS = ("hr", "spo2", "temp")


def limits_in_force(settings: dict[str, Setting]) -> dict[str, float | str]:
    """The first-level limit and priority of each enabled vital-sign rule, flat, for a display
    or the ``limits`` measurement: ``{"spo2_low": 90.0, "spo2_low_priority": "medium", ...}``.

    ``settings`` is what ``Limits.settings_for`` (or ``Engine.settings``) gives for one bed.
    """
    out: dict[str, float | str] = {}
    for code, s in settings.items():
        if RULES[code].param in VITALS and s.limit is not None and s.priority is not None:
            out[code] = float(s.limit)
            out[code + "_priority"] = s.priority
    return out


def breached(limits: dict[str, float | str], param: str, value: float) -> Priority | None:
    """The highest priority among the rules on ``param`` whose limit ``value`` is past, under
    ``limits`` as ``limits_in_force`` gives them; None when inside every limit.

    A display's colour for the value now: no condition delay, no hysteresis, no latching
    (those belong to the alarm, which the engine raises).
    """
    worst: Priority | None = None
    for code, rule in RULES.items():
        limit = limits.get(code)
        if rule.param != param or not isinstance(limit, float | int):
            continue
        if past(rule.op, value, limit):
            priority = limits.get(code + "_priority")
            if priority in PRIORITY_RANK and (worst is None or PRIORITY_RANK[priority] > PRIORITY_RANK[worst]):
                worst = priority  # type: ignore[assignment]
    return worst


def check(rule: Rule, s: Setting, where: str) -> None:
    """Raise LimitsError (naming ``where``) if the merged setting cannot work."""
    for key in ("limit", "clear", "priority"):
        if getattr(s, key) is None:
            raise LimitsError(f"{where}.{key}: missing")
    assert s.limit is not None and s.clear is not None
    # Hysteresis must point back towards normal, or the alarm would flap or never clear.
    if rule.op == "<" and s.clear < s.limit:
        raise LimitsError(f"{where}.clear: {s.clear:g} must be >= limit {s.limit:g} (alarm below the limit)")
    if rule.op == ">" and s.clear > s.limit:
        raise LimitsError(f"{where}.clear: {s.clear:g} must be <= limit {s.limit:g} (alarm above the limit)")
    if rule.op == ">=" and s.clear > s.limit:
        raise LimitsError(f"{where}.clear: {s.clear:g} must be <= limit {s.limit:g}")
    if s.delay_s is not None and s.delay_s < 0:
        raise LimitsError(f"{where}.delay_s: must be >= 0")
    if rule.escalate == "value" and s.escalate_limit is not None and s.escalate_clear is not None:
        if (rule.op == "<" and s.escalate_clear < s.escalate_limit) or (rule.op != "<" and s.escalate_clear > s.escalate_limit):
            raise LimitsError(f"{where}.escalate_clear: {s.escalate_clear:g} is on the wrong side of escalate_limit")
        if (rule.op == "<" and s.escalate_limit > s.limit) or (rule.op != "<" and s.escalate_limit < s.limit):
            raise LimitsError(f"{where}.escalate_limit: {s.escalate_limit:g} is less severe than limit {s.limit:g}")
    if rule.escalate == "time" and s.escalate_s is not None and s.escalate_s < (s.delay_s or 0):
        raise LimitsError(f"{where}.escalate_s: must be >= delay_s")
    if not rule.escalate and any(
        getattr(s, k) is not None for k in ("escalate_limit", "escalate_clear", "escalate_s", "escalate_priority")
    ):
        raise LimitsError(f"{where}: {rule.code} has no escalation level")


Layer = dict[str, Setting]


class Limits:
    """The layered settings: ``default``, per ward, per (ward, bed). Immutable once loaded."""

    def __init__(self, default: Layer | None = None, wards: dict[str, Layer] | None = None,
                 beds: dict[tuple[str, str], Layer] | None = None):
        self.default = default or {}
        self.wards = wards or {}
        self.beds = beds or {}

    def settings_for(self, ward: str, bed: str, patient: Layer | None = None) -> dict[str, Setting]:
        """The merged setting of every enabled rule for one bed (and its patient's overrides)."""
        out = {}
        for code, rule in RULES.items():
            s = rule.default
            for layer in (self.default, self.wards.get(ward, {}), self.beds.get((ward, bed), {}), patient or {}):
                if code in layer:
                    s = layer[code].over(s)
            if s.enabled:
                out[code] = s
        return out

    @classmethod
    def parse(cls, text: str, source: str) -> "Limits":
        """Parse and check the text of a limits file named ``source``.

        Errors: ``source:line: key: problem``. The shell reads the file
        (``gateway.config.load_limits``).
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise LimitsError(f"{source}: {exc}") from None
        try:
            return cls.from_dict(data)
        except LimitsError as exc:
            key = str(exc).split(":", 1)[0]
            raise LimitsError(f"{source}:{line_of(text, key) or '?'}: {exc}") from None

    @classmethod
    def from_dict(cls, data: dict) -> "Limits":
        unknown = set(data) - {"default", "ward"}
        if unknown:
            raise LimitsError(f"{sorted(unknown)[0]}: unknown section (expected default or ward)")
        default = parse_layer(data.get("default", {}), "default")
        wards: dict[str, Layer] = {}
        beds: dict[tuple[str, str], Layer] = {}
        for ward, table in _table(data.get("ward", {}), "ward").items():
            table = dict(_table(table, f"ward.{ward}"))
            for bed, bed_table in _table(table.pop("bed", {}), f"ward.{ward}.bed").items():
                beds[(ward, bed)] = parse_layer(bed_table, f"ward.{ward}.bed.{bed}")
            wards[ward] = parse_layer(table, f"ward.{ward}")
        limits = cls(default, wards, beds)
        # Check every combination that can occur, so a bad file fails at start, not at 3 am.
        for where, layers in _combinations(limits):
            for code, rule in RULES.items():
                s = rule.default
                for layer in layers:
                    if code in layer:
                        s = layer[code].over(s)
                check(rule, s, f"{where}.{code}")
        return limits


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise LimitsError(f"{where}: expected a table")
    return value


def parse_layer(table: dict, where: str) -> Layer:
    """``{code: {key: value}}`` -> Settings; unknown codes and keys are errors naming them."""
    layer: Layer = {}
    for code, values in _table(table, where).items():
        if code not in RULES:
            raise LimitsError(f"{where}.{code}: unknown alarm code (known: {', '.join(RULES)})")
        try:
            layer[code] = msgspec.convert(_table(values, f"{where}.{code}"), Setting)
        except msgspec.ValidationError as err:
            raise LimitsError(f"{error_key(err, f'{where}.{code}')}: {error_message(err)}") from None
    return layer


def _combinations(limits: Limits):
    yield "default", [limits.default]
    for ward, layer in limits.wards.items():
        yield f"ward.{ward}", [limits.default, layer]
    for (ward, bed), layer in limits.beds.items():
        yield f"ward.{ward}.bed.{bed}", [limits.default, limits.wards.get(ward, {}), layer]


def parse_overrides(items: list[str]) -> Layer:
    """Patient overrides from ``code.key=value`` strings (CLI ``--limit``), checked.

    Raises LimitsError naming the item.
    """
    table: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        code, dot, field = key.strip().partition(".")
        if not sep or not dot:
            raise LimitsError(f"{item!r}: expected code.key=value, e.g. spo2_low.limit=88")
        value: object
        text = raw.strip()
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            try:
                value = float(text)
            except ValueError:
                value = text
        table.setdefault(code, {})[field] = value
    layer = parse_layer(table, "patient")
    for code, s in layer.items():
        check(RULES[code], s.over(RULES[code].default), f"patient.{code}")
    return layer


def layer_to_dict(layer: Layer) -> dict:
    return {code: msgspec.to_builtins(s) for code, s in layer.items()}


def layer_from_dict(data: dict) -> Layer:
    return parse_layer(data, "patient")
