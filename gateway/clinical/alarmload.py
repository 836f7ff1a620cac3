"""Alarm load report: alarms per bed-day, time active, share acknowledged, top beds and codes.

The arithmetic behind ``wardwatch alarms report --since 24h`` (``gateway.cli.report``). Alarm fatigue is designed against with
figures (docs/clinical.md, "Alarm fatigue"): a ward tunes its limits and delays
from how many alarms each code raises per bed-day, how long they stay active and how many
anyone acknowledges. This is a secondary display, not a medical device.

Pure: ``compute()`` folds events into a ``Report`` (no I/O, no clock), and
``event_from_row()`` maps one InfluxQL row to an event. ``gateway.cli.report`` reads InfluxDB,
renders and parses the command line.

Definitions (also carried in every report as ``definitions``):

* Window: ``[since, until)`` in epoch ms; ``until`` is "now" when the command runs.
* Alarm: one ``alarm_id`` of the ``alarm`` measurement (written by the gateway's alarm
  engine, one point per lifecycle event). Only a ``raised`` event starts an alarm:
  ``escalated``, ``deescalated``, ``acked``, ``reminder`` and ``latched`` never count as new
  alarms.
* Counts and shares (``alarms``, ``by_priority``, ``by_kind``, ``share_acknowledged``,
  ``mean_active_s``, per-bed and per-code counts) cover alarms *raised inside the window*.
  An alarm raised before the window is *carried over*: it is not counted, but its active
  time inside the window is (so ``time_active_s`` is the load the ward actually carried).
* Time active of one alarm: from its ``raised`` event to its ``cleared`` event, or to the
  window end when not cleared yet, clipped to the window. An alarm whose ``raised`` event is
  not in the data (raised before the look-back, see ``fetch``) is taken as active from the
  window start. ``since_ms`` (when the condition began, before any alarm delay) is not used.
* Acknowledged: at least one ``acked`` event before the window end.
* Priority of an alarm: the highest priority any of its events carried (an alarm that
  escalated to high counts as high).
* Simulated: an alarm is simulated when any of its events has ``simulated=true``;
  ``simulated_alarms`` counts simulated alarms raised in the window, and
  ``includes_simulated`` is true when any figure includes a simulated alarm.
* Bed: a (ward, bed) pair; bed ``unassigned`` is a device without a bed and bed ``-`` holds
  alarms about a whole ward (``alarms_delayed``): neither is a bed, and both are left out of
  every figure. ``beds`` counts beds with readings or alarm activity in the
  window.
* Bed-days: per bed, time from its first to its last ``vitals`` reading inside the window
  (gaps in between count as monitored), summed over beds, divided by 86,400 s. A bed with
  alarms but no readings contributes 0 (and is still listed).
  ``alarms_per_bed_day`` is null when bed-days is 0.
* Top beds: beds with at least one alarm raised or active in the window, ordered by alarms
  raised (descending), then time active (descending), then ward and bed (ascending, as
  text), so ties are deterministic. ``by_code`` is ordered the same way by code.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec

from ..contract import UNASSIGNED, WARD_LEVEL
from .rules import PRIORITIES, PRIORITY_RANK

DAY_MS = 86_400_000
# Devices without a bed, and alarms about a whole ward (alarms_delayed): not a bed's load.
NOT_BEDS = (UNASSIGNED, WARD_LEVEL)

DEFINITIONS = {
    "window": "[since, until) in epoch ms; until is the time the report ran",
    "alarms": "alarms raised inside the window (escalations, reminders, acks are not new alarms)",
    "time_active": (
        "raised to cleared (or window end), clipped to the window; includes the in-window time "
        "of alarms raised before the window"
    ),
    "share_acknowledged": "share of alarms raised in the window with at least one acked event",
    "priority": "highest priority the alarm reached",
    "bed_days": (
        "per bed, first to last vitals reading inside the window, summed, / 86400 s; "
        "bed 'unassigned' (no bed) and '-' (ward-level alarms) excluded"
    ),
    "top_beds": "by alarms desc, then time active desc, then ward, bed asc",
}


class AlarmEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One point of the ``alarm`` measurement. ``time_ms``: event time, epoch ms."""

    time_ms: int
    alarm_id: str
    event: str  # raised | escalated | deescalated | acked | reminder | latched | cleared
    ward: str
    bed: str
    code: str
    priority: str = "low"  # high | medium | low, at this event
    kind: str = "physiological"  # physiological | technical
    device: str = ""
    state: str = ""
    acked_by: str = ""
    simulated: bool = False


class CodeFigures(msgspec.Struct, kw_only=True):
    """Figures for one alarm code: the unit a ward tunes a limit or delay by."""

    code: str
    alarms: int
    per_bed_day: float | None
    time_active_s: float
    mean_active_s: float | None
    share_acknowledged: float | None
    simulated_alarms: int


class BedFigures(msgspec.Struct, kw_only=True):
    """Figures for one bed; ``per_bed_day`` is null when the bed has no monitored time."""

    ward: str
    bed: str
    alarms: int
    bed_days: float
    per_bed_day: float | None
    time_active_s: float
    share_acknowledged: float | None
    simulated: bool


class Report(msgspec.Struct, kw_only=True):
    """The alarm load over one window; see the module docstring for every definition."""

    since_ms: int
    until_ms: int
    since: str  # ISO 8601, UTC
    until: str
    hours: float
    ward: str | None
    beds: int
    bed_days: float
    alarms: int
    alarms_per_bed_day: float | None
    carried_over: int  # raised before the window, active in it
    still_active: int  # active at the window end
    time_active_s: float
    mean_active_s: float | None
    share_acknowledged: float | None
    by_priority: dict[str, int]
    by_kind: dict[str, int]
    by_code: list[CodeFigures]
    top_beds: list[BedFigures]
    simulated_alarms: int
    includes_simulated: bool
    definitions: dict[str, str]


class _Alarm:
    """One alarm instance folded from its events (internal to ``compute``)."""

    __slots__ = ("ward", "bed", "code", "kind", "raised", "cleared", "acked", "rank", "simulated")

    def __init__(self, e: AlarmEvent):
        self.ward, self.bed, self.code, self.kind = e.ward, e.bed, e.code, e.kind
        self.raised: int | None = None
        self.cleared: int | None = None
        self.acked = False
        self.rank = 0  # PRIORITY_RANK of the highest priority seen; 0: none known
        self.simulated = False


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def compute(
    events: list[AlarmEvent],
    monitored_ms: dict[tuple[str, str], int],
    since_ms: int,
    until_ms: int,
    top: int = 5,
    ward: str | None = None,
) -> Report:
    """Pure: fold alarm events and monitored time per bed into a ``Report``.

    ``events`` may come in any order and may include events before ``since_ms`` (needed for
    alarms raised before the window); events at or after ``until_ms`` are ignored.
    ``monitored_ms`` maps (ward, bed) to monitored milliseconds inside the window. ``ward``
    is only echoed into the report (the caller filters). ``top`` >= 0 limits ``top_beds``.
    Called by ``run()`` and the tests.
    """
    if until_ms <= since_ms:
        raise ValueError("until_ms must be after since_ms")
    alarms: dict[str, _Alarm] = {}
    for e in sorted(events, key=lambda e: e.time_ms):
        if e.bed in NOT_BEDS or e.time_ms >= until_ms:
            continue
        a = alarms.get(e.alarm_id)
        if a is None:
            a = alarms[e.alarm_id] = _Alarm(e)
        # Events are sorted, so the first raised/cleared wins if a writer ever repeated one.
        if e.event == "raised" and a.raised is None:
            a.raised = e.time_ms
        elif e.event == "cleared" and a.cleared is None:
            a.cleared = e.time_ms
        elif e.event == "acked":
            a.acked = True
        a.rank = max(a.rank, PRIORITY_RANK.get(e.priority, 0))
        a.simulated = a.simulated or e.simulated

    monitored = {k: v for k, v in monitored_ms.items() if k[1] not in NOT_BEDS and v > 0}
    bed_days = {k: v / DAY_MS for k, v in monitored.items()}
    total_bed_days = sum(monitored.values()) / DAY_MS  # one division: no float drift

    by_priority = {p: 0 for p in reversed(PRIORITIES)}
    by_kind = {"physiological": 0, "technical": 0}
    # Per bed and per code: [alarms, active_ms, acked, simulated count, active_ms of counted, any simulated]
    per_bed: dict[tuple[str, str], list] = {}
    per_code: dict[str, list] = {}
    counted = carried = still = acked = simulated = 0
    active_total = active_counted = 0
    any_simulated = False
    for a in alarms.values():
        start = a.raised if a.raised is not None else since_ms
        end = a.cleared if a.cleared is not None else until_ms
        active = max(0, min(end, until_ms) - max(start, since_ms))
        is_counted = a.raised is not None and a.raised >= since_ms
        # Raised before the window and cleared by its start: in no figure.
        if not is_counted and active == 0:
            continue
        active_total += active
        any_simulated = any_simulated or a.simulated
        if a.cleared is None:
            still += 1
        for table, key in ((per_bed, (a.ward, a.bed)), (per_code, a.code)):
            row = table.setdefault(key, [0, 0, 0, 0, 0, False])
            row[1] += active
            row[5] = row[5] or a.simulated
            if is_counted:
                row[0] += 1
                row[2] += a.acked
                row[3] += a.simulated
                row[4] += active
        if not is_counted:
            carried += 1
            continue
        counted += 1
        active_counted += active
        acked += a.acked
        simulated += a.simulated
        if a.rank:
            by_priority[PRIORITIES[a.rank - 1]] += 1
        by_kind[a.kind] = by_kind.get(a.kind, 0) + 1

    def order(item):
        key, row = item
        return (-row[0], -row[1], key)

    code_figures = [
        CodeFigures(
            code=code,
            alarms=row[0],
            per_bed_day=_ratio(row[0], total_bed_days),
            time_active_s=row[1] / 1000,
            mean_active_s=_ratio(row[4] / 1000, row[0]),
            share_acknowledged=_ratio(row[2], row[0]),
            simulated_alarms=row[3],
        )
        for code, row in sorted(per_code.items(), key=order)
    ]
    bed_figures = [
        BedFigures(
            ward=key[0],
            bed=key[1],
            alarms=row[0],
            bed_days=bed_days.get(key, 0.0),
            per_bed_day=_ratio(row[0], bed_days.get(key, 0.0)),
            time_active_s=row[1] / 1000,
            share_acknowledged=_ratio(row[2], row[0]),
            simulated=row[5],
        )
        for key, row in sorted(per_bed.items(), key=order)[: max(0, top)]
    ]
    return Report(
        since_ms=since_ms,
        until_ms=until_ms,
        since=_iso(since_ms),
        until=_iso(until_ms),
        hours=(until_ms - since_ms) / 3_600_000,
        ward=ward,
        beds=len(set(monitored) | set(per_bed)),
        bed_days=total_bed_days,
        alarms=counted,
        alarms_per_bed_day=_ratio(counted, total_bed_days),
        carried_over=carried,
        still_active=still,
        time_active_s=active_total / 1000,
        mean_active_s=_ratio(active_counted / 1000, counted),
        share_acknowledged=_ratio(acked, counted),
        by_priority=by_priority,
        by_kind=by_kind,
        by_code=code_figures,
        top_beds=bed_figures,
        simulated_alarms=simulated,
        includes_simulated=any_simulated,
        definitions=dict(DEFINITIONS),
    )


def event_from_row(row: dict) -> AlarmEvent | None:
    """One InfluxQL row of ``SELECT * FROM alarm`` -> ``AlarmEvent``; None when it lacks
    the time, alarm_id, event, ward or bed (a malformed point is skipped, not fatal)."""
    if any(not row.get(k) for k in ("alarm_id", "event", "ward", "bed")) or row.get("time") is None:
        return None
    return AlarmEvent(
        time_ms=int(row["time"]),
        alarm_id=row["alarm_id"],
        event=row["event"],
        ward=row["ward"],
        bed=row["bed"],
        code=row.get("code") or "?",
        priority=row.get("priority") or "low",
        kind=row.get("kind") or "physiological",
        device=row.get("device") or "",
        state=row.get("state") or "",
        acked_by=row.get("acked_by") or "",
        simulated=bool(row.get("simulated")),
    )
