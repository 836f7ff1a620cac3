"""Grafana's InfluxQL macros and template variables, expanded the way Grafana expands them.

Who calls it: the dashboard tests (every panel and alert query is expanded and run on a real
InfluxDB) and, later, a ``push --dry-run`` preview. Pure functions, no I/O, no clock.

Modelled on Grafana 10/11's InfluxDB data source (``public/app/plugins/datasource/influxdb``:
``getTimeFilter``, ``getInfluxTime``, ``interpolateQueryExpr``) and its interval arithmetic
(``rangeutil.calculateInterval``, ``roundInterval``, ``secondsToHms``):

- ``$timeFilter`` -> ``time >= now() - 1h and time <= now()`` for a relative range (``now-1h`` ..
  ``now``); an absolute end or start becomes epoch milliseconds (``time >= 1700000000000ms``),
  which is also what Grafana's backend query path always sends.
- ``$__interval`` and ``$interval`` -> a duration such as ``5s``, ``30s``, ``10m``;
  ``$__interval_ms`` -> the same in milliseconds (``5000``).
- Template variables in the three syntaxes ``$ward``, ``${ward}``, ``[[ward]]``. A variable that is
  multi-valued or has "include All" is regex-escaped value by value and, with more than one value,
  joined as ``(w1|w2)``, meant for ``"ward" =~ /^$ward$/``. A plain single-valued variable is
  inserted as it is. ``${var:raw}`` / ``${var:regex}`` pick the format explicitly.

Names are matched longest first, so ``$ward`` is not taken as ``$w`` + ``ard``, and a variable
name must end at a non-word character, as in Grafana.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_RELATIVE = re.compile(r"^now-(\d+)([smhdw])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


@dataclass(frozen=True)
class Var:
    """A template variable's current value(s). ``multi``/``include_all``: as set on the variable
    in the dashboard; either one makes Grafana regex-escape the value in InfluxQL."""

    values: tuple[str, ...]
    multi: bool = False
    include_all: bool = False

    @classmethod
    def single(cls, value: str) -> "Var":
        return cls((value,))

    @classmethod
    def many(cls, *values: str, include_all: bool = True) -> "Var":
        return cls(tuple(values), multi=True, include_all=include_all)


def escape_regex(value: str) -> str:
    """Grafana's ``escapeRegex``: a backslash before each of ``\\ ^ $ * + ? . ( ) | [ ] { } /``."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def format_value(var: Var, fmt: str | None = None) -> str:
    """The text Grafana's InfluxDB data source puts in place of a variable.

    ``fmt`` None: the data source default (``interpolateQueryExpr``): raw for a plain
    single-valued variable, else each value regex-escaped and several joined ``(a|b)``.
    ``"raw"``: values joined by commas, unescaped. ``"regex"``: always the escaped form.
    """
    if fmt == "raw":
        return ",".join(var.values)
    if fmt is None and not var.multi and not var.include_all:
        return var.values[0] if var.values else ""
    escaped = [escape_regex(v) for v in var.values]
    if len(escaped) == 1:
        return escaped[0]
    return "(" + "|".join(escaped) + ")"


def influx_time(raw: str | int, round_up: bool = False) -> str:
    """Grafana's ``getInfluxTime``: ``"now"`` -> ``now()``, ``"now-6h"`` -> ``now() - 6h``, epoch ms
    (an int, or digits) -> ``<ms>ms``. ``round_up`` is accepted for symmetry with Grafana, where
    it rounds date-math ends (``now/d``) that these dashboards do not use."""
    if isinstance(raw, str):
        if raw == "now":
            return "now()"
        m = _RELATIVE.match(raw)
        if m:
            return f"now() - {m.group(1)}{m.group(2)}"
        if not raw.isdigit():
            raise ValueError(f"unsupported time {raw!r}: use now, now-<n><s|m|h|d|w> or epoch ms")
    return f"{int(raw)}ms"


def time_filter(start: str | int, end: str | int = "now") -> str:
    """``$timeFilter`` for the range ``start`` .. ``end`` (``getTimeFilter``)."""
    return f"time >= {influx_time(start)} and time <= {influx_time(end, True)}"


def range_ms(start: str | int, end: str | int = "now", now_ms: int = 0) -> int:
    """The length of a range in ms; relative ends are taken against ``now_ms``."""

    def at(t: str | int) -> int:
        if isinstance(t, int) or str(t).isdigit():
            return int(t)
        if t == "now":
            return now_ms
        m = _RELATIVE.match(str(t))
        if not m:
            raise ValueError(f"unsupported time {t!r}")
        return now_ms - int(m.group(1)) * _UNIT_MS[m.group(2)]

    return at(end) - at(start)


# Grafana's rangeutil.roundInterval: (upper bound exclusive, interval) in ms.
_ROUND = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000),
    (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000),
    (45_000, 30_000), (90_000, 60_000), (210_000, 120_000), (450_000, 300_000),
    (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000), (2_700_000, 1_800_000),
    (5_400_000, 3_600_000), (9_000_000, 7_200_000), (16_200_000, 10_800_000),
    (32_400_000, 21_600_000), (86_400_000, 43_200_000), (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000),
)


def round_interval(ms: float) -> int:
    """Grafana's ``roundInterval``: a raw interval in ms -> the nearest "nice" one."""
    for bound, nice in _ROUND:
        if ms < bound:
            return nice
    return 31_536_000_000


def auto_interval_ms(range_len_ms: int, max_data_points: int = 1000, min_interval_ms: int = 0) -> int:
    """``$__interval_ms`` as Grafana computes it for a panel: the range over its data points
    (about its width in pixels; the dashboards here set 1000), rounded, at least the panel's
    min interval."""
    return max(round_interval(range_len_ms / max_data_points), min_interval_ms)


def format_interval(ms: int) -> str:
    """Grafana's ``secondsToHms`` for an interval: ``500ms``, ``5s``, ``10m``, ``1h``, ``1d``, ``1y``."""
    if ms % 1000:
        return f"{ms}ms"
    s = ms // 1000
    for unit, size in (("y", 31_536_000), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)")


def expand(query: str, variables: dict[str, Var] | None = None, *, start: str | int = "now-1h",
           end: str | int = "now", interval_ms: int | None = None, now_ms: int = 0) -> str:
    """Expand every macro and template variable of one InfluxQL query, as Grafana would for a
    panel showing ``start`` .. ``end``.

    ``interval_ms`` None: computed with ``auto_interval_ms`` from the range (``now_ms`` is only
    needed then, for ranges with absolute ends). Raises ``KeyError`` naming a variable the query
    uses but ``variables`` lacks, so a test cannot silently run a half-expanded query.
    """
    variables = variables or {}
    if interval_ms is None:
        interval_ms = auto_interval_ms(range_ms(start, end, now_ms))
    builtins = {
        "timeFilter": time_filter(start, end),
        "__interval": format_interval(interval_ms),
        "interval": format_interval(interval_ms),
        "__interval_ms": str(interval_ms),
    }

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(3) or m.group(4)
        fmt = m.group(2)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            raise KeyError(f"query uses ${name}, which has no value: {query}")
        return format_value(variables[name], fmt)

    return _VAR.sub(sub, query)


def variables_used(query: str) -> set[str]:
    """The names of the variables and macros a query refers to (any of the three syntaxes)."""
    return {m.group(1) or m.group(3) or m.group(4) for m in _VAR.finditer(query)}
