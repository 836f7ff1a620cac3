"""NEWS2 (National Early Warning Score 2) from one set of observations. Pure: no I/O, no clock.

Source: Royal College of Physicians, *National Early Warning Score (NEWS) 2*, 2017, chart 1
(scoring) and chart 4 (clinical response); transcribed in ``docs/clinical.md`` section "NEWS2",
which is the project's source of truth.

Callers: the alarm engine (NEWS2 medium/high/single-3 alarms) and the clinician's calculator
(``wardwatch news2``, see :mod:`gateway.cli.news2calc`).

Contract of :func:`score`:

- Inputs (:class:`Observations`), each ``None`` when not measured:
  ``rr`` breaths/min, ``spo2`` % (0-100), ``scale`` 1 or 2, ``o2`` True on supplemental
  oxygen / False on air, ``sbp`` mmHg, ``pulse`` beats/min, ``acvpu`` one of A C V P U
  ("C" means *new* confusion), ``temp`` degrees Celsius. Numbers are real: device medians
  may be fractional (35.05 degC, 91.5 %).
- Nonsense raises ``ValueError`` naming the parameter: a number that is negative, NaN or
  infinite, SpO2 above 100, a scale other than 1 or 2, an unknown ACVPU letter.
- Output (:class:`News2`): the aggregate of the sub-scores that are present, the risk band,
  the chart-4 response, and ``partial``/``missing`` saying which of the seven parameters
  were absent. A partial score can only under-state the true one; callers must show it.

Half-open intervals. The RCP table is written in integer rows (pulse 41-50, 51-90, ...;
temperature in 0.1 degC rows). On real numbers each row becomes the half-open interval
``(upper bound of the row below, own upper bound]``, so there are no gaps between rows:
pulse 50.5 scores like 51-90 (0), temperature 35.05 like 35.1-36.0 (1). Equivalently a value
scores as the table row of its ceiling to the table's resolution. The same rule fixes the
open-ended rows: systolic BP "111-219 -> 0, >=220 -> 3" becomes ``(110, 219] -> 0`` and
``> 219 -> 3``, so 219.5 mmHg scores 3. The tables below are written as
``(upper bound inclusive, points)`` rows in ascending order, the last row unbounded.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

Band = Literal["low", "low-medium", "medium", "high"]
Table = tuple[tuple[float, int], ...]

# The seven parameters, in chart order; ``missing`` lists them in this order.
PARAMETERS: tuple[str, ...] = ("rr", "spo2", "o2", "sbp", "pulse", "acvpu", "temp")

INF = math.inf

RR: Table = ((8, 3), (11, 1), (20, 0), (24, 2), (INF, 3))
SPO2_SCALE1: Table = ((91, 3), (93, 2), (95, 1), (INF, 0))
# Scale 2 rows up to the 88-92 % target; above 92 the score depends on air/oxygen.
SPO2_SCALE2: Table = ((83, 3), (85, 2), (87, 1), (92, 0))
SPO2_SCALE2_ON_O2: Table = ((94, 1), (96, 2), (INF, 3))
SPO2_SCALE2_ON_AIR: Table = ((INF, 0),)
SBP: Table = ((90, 3), (100, 2), (110, 1), (219, 0), (INF, 3))
PULSE: Table = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (INF, 3))
TEMP: Table = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (INF, 2))

ACVPU_POINTS: dict[str, int] = {"A": 0, "C": 3, "V": 3, "P": 3, "U": 3}
O2_POINTS: dict[bool, int] = {True: 2, False: 0}

# RCP chart 4, keyed by the band; score 0 has its own line within "low".
RESPONSE_ZERO = "observations at least 12-hourly"
RESPONSE: dict[str, str] = {
    "low": "at least 4–6-hourly; the registered nurse assesses and decides on escalation",
    "low-medium": "at least hourly; the nurse informs the medical team for urgent review",
    "medium": (
        "at least hourly; the nurse informs the medical team at once; urgent review by a "
        "clinician competent in acute illness; care in a monitored environment"
    ),
    "high": (
        "continuous monitoring; inform at least specialist-registrar level; emergency "
        "assessment by a critical-care team; consider transfer to HDU/ICU"
    ),
}


class Observations(msgspec.Struct, frozen=True):
    """One set of observations; ``None`` = not measured. Units and ranges: see module doc."""

    rr: float | None = None
    spo2: float | None = None
    scale: Literal[1, 2] = 1
    o2: bool | None = None
    sbp: float | None = None
    pulse: float | None = None
    acvpu: Literal["A", "C", "V", "P", "U"] | None = None
    temp: float | None = None


class News2(msgspec.Struct, frozen=True):
    """A NEWS2 result.

    ``score`` sums the present sub-scores (0-20); ``subscores`` holds only present
    parameters; ``missing`` names absent ones in chart order and ``partial`` is true when any
    is absent. ``single3`` is true when any sub-score is 3. ``response`` is the RCP chart-4
    clinical response for ``band`` (score 0 has its own "low" response).
    """

    score: int
    band: Band
    partial: bool
    subscores: dict[str, int]
    missing: list[str]
    single3: bool
    scale: int
    response: str


def lookup(table: Table, value: float) -> int:
    """Points for ``value`` in a table of ascending ``(upper bound inclusive, points)`` rows."""
    for upper, points in table:
        if value <= upper:
            return points
    # Only reachable for a bounded table (scale-2 low rows); callers pick tables that cover.
    raise ValueError(f"{value} is above the table's last row")


def _number(name: str, value: object, maximum: float | None = None) -> float:
    # bool is an int subclass; True as a pulse is a caller bug, not 1 /min.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    if x < 0:
        raise ValueError(f"{name}: must not be negative, got {value!r}")
    if maximum is not None and x > maximum:
        raise ValueError(f"{name}: must be at most {maximum:g}, got {value!r}")
    return x


def spo2_points(spo2: float, scale: int, o2: bool | None) -> int:
    """SpO2 sub-score (input already validated).

    Scale 2 above 92 %: on oxygen it scores 1-3 (over-oxygenation of a hypercapnic patient);
    on air, or with air/oxygen unknown (``o2 is None``), it scores 0. Unknown scores as air
    because the oxygen status is the missing fact; the result is flagged partial anyway.
    """
    if scale == 1:
        return lookup(SPO2_SCALE1, spo2)
    if spo2 <= SPO2_SCALE2[-1][0]:
        return lookup(SPO2_SCALE2, spo2)
    return lookup(SPO2_SCALE2_ON_O2 if o2 else SPO2_SCALE2_ON_AIR, spo2)


def band_for(total: int, single3: bool) -> Band:
    """RCP chart-4 risk band: >=7 high, 5-6 medium, else a single 3 is low-medium, else low."""
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if single3:
        return "low-medium"
    return "low"


def response_for(total: int, band: Band) -> str:
    """The chart-4 clinical response text for an aggregate and its band."""
    if band == "low" and total == 0:
        return RESPONSE_ZERO
    return RESPONSE[band]


def score(obs: Observations) -> News2:
    """Score one set of observations (see the module doc for the contract)."""
    if isinstance(obs.scale, bool) or obs.scale not in (1, 2):
        raise ValueError(f"scale: must be 1 or 2, got {obs.scale!r}")
    if obs.o2 is not None and not isinstance(obs.o2, bool):
        raise ValueError(f"o2: must be True (oxygen), False (air) or None, got {obs.o2!r}")
    if obs.acvpu is not None and obs.acvpu not in ACVPU_POINTS:
        raise ValueError(f"acvpu: must be one of A, C, V, P, U, got {obs.acvpu!r}")

    # Validate every present number before scoring any, so an error never hides another.
    rr = None if obs.rr is None else _number("rr", obs.rr)
    spo2 = None if obs.spo2 is None else _number("spo2", obs.spo2, maximum=100)
    sbp = None if obs.sbp is None else _number("sbp", obs.sbp)
    pulse = None if obs.pulse is None else _number("pulse", obs.pulse)
    temp = None if obs.temp is None else _number("temp", obs.temp)

    points: dict[str, int | None] = {
        "rr": None if rr is None else lookup(RR, rr),
        "spo2": None if spo2 is None else spo2_points(spo2, obs.scale, obs.o2),
        "o2": None if obs.o2 is None else O2_POINTS[obs.o2],
        "sbp": None if sbp is None else lookup(SBP, sbp),
        "pulse": None if pulse is None else lookup(PULSE, pulse),
        "acvpu": None if obs.acvpu is None else ACVPU_POINTS[obs.acvpu],
        "temp": None if temp is None else lookup(TEMP, temp),
    }
    subscores = {name: p for name, p in points.items() if p is not None}
    missing = [name for name in PARAMETERS if points[name] is None]
    total = sum(subscores.values())
    single3 = any(p == 3 for p in subscores.values())
    band = band_for(total, single3)
    return News2(
        score=total,
        band=band,
        partial=bool(missing),
        subscores=subscores,
        missing=missing,
        single3=single3,
        scale=int(obs.scale),
        response=response_for(total, band),
    )
