"""Alarm load report: alarms per bed-day, time active, share acknowledged, top beds and codes.

Behind ``wardwatch alarms report --since 24h``. Alarm fatigue is designed against with
figures (CLINICAL.md, "Alarm fatigue"): a ward tunes its limits and delays
from how many alarms each code raises per bed-day, how long they stay active and how many
anyone acknowledges. This is a secondary display, not a medical device.

Functional core, imperative shell: ``compute()`` is pure (events in, ``Report`` out, no I/O,
no clock); ``fetch()`` reads InfluxDB through InfluxQL; ``run()`` is the command.

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
* Bed: a (ward, bed) pair; bed ``unassigned`` is a device without a bed, not a bed, and is
  left out of every figure. ``beds`` counts beds with readings or alarm activity in the
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

import argparse
import os
import re
import sys
import time
from datetime import datetime, timezone

import msgspec

UNASSIGNED = "unassigned"
PRIORITY_RANK = {"low": 0, "medium": 1, "high": 2}
DAY_MS = 86_400_000
# Look back this far before the window for alarms raised earlier and still active in it.
DEFAULT_LOOKBACK_MS = 7 * DAY_MS

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
        "bed 'unassigned' excluded"
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
        self.rank = -1
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
        if e.bed == UNASSIGNED or e.time_ms >= until_ms:
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
        a.rank = max(a.rank, PRIORITY_RANK.get(e.priority, -1))
        a.simulated = a.simulated or e.simulated

    monitored = {k: v for k, v in monitored_ms.items() if k[1] != UNASSIGNED and v > 0}
    bed_days = {k: v / DAY_MS for k, v in monitored.items()}
    total_bed_days = sum(monitored.values()) / DAY_MS  # one division: no float drift

    by_priority = {"high": 0, "medium": 0, "low": 0}
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
        if a.rank >= 0:
            by_priority[("low", "medium", "high")[a.rank]] += 1
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


# --- parsing ---------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": DAY_MS, "w": 7 * DAY_MS}


def parse_duration(text: str) -> int:
    """``"90m"``, ``"24h"``, ``"7d"``, ``"1d12h"`` -> milliseconds (> 0).

    Units: s, m, h, d, w. Raises ``argparse.ArgumentTypeError`` (a ``ValueError``-like error
    argparse prints as-is) for anything else, zero included.
    """
    s = text.strip().lower()
    parts = _DURATION_PART.findall(s)
    ms = sum(int(n) * _UNIT_MS[u] for n, u in parts)
    if not parts or "".join(n + u for n, u in parts) != s or ms <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a positive number and a unit s, m, h, d or w (e.g. 90m, 24h, 7d)"
        )
    return ms


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a whole number >= 1")
    return n


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


# --- shell -----------------------------------------------------------------------------


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fetch(
    db, since_ms: int, until_ms: int, ward: str | None = None, lookback_ms: int = DEFAULT_LOOKBACK_MS
) -> tuple[list[AlarmEvent], dict[tuple[str, str], int]]:
    """Read alarm events and monitored time per bed for ``[since_ms, until_ms)``.

    ``db`` is a ``gateway.wardview.InfluxQL`` (anything with ``rows(q)``). Alarm events:
    every event inside the window, plus the ``raised``/``cleared`` events of the
    ``lookback_ms`` before it, so alarms raised earlier and still active are seen (an alarm
    raised before the look-back and silent through the window is missed). Monitored time:
    last minus first ``vitals`` reading per (ward, bed) inside the window. Bed ``unassigned``
    is dropped. Raises ``OSError`` when the database cannot be reached and ``RuntimeError``
    on an InfluxQL error. Four queries, InfluxDB 1.6 compatible.
    """
    w = f" AND ward = {_quote(ward)}" if ward else ""
    window = f"time >= {since_ms}ms AND time < {until_ms}ms{w}"
    rows = db.rows(f"SELECT * FROM alarm WHERE {window}")
    rows += db.rows(
        f"SELECT * FROM alarm WHERE time >= {since_ms - lookback_ms}ms AND time < {since_ms}ms{w}"
        " AND (event = 'raised' OR event = 'cleared')"
    )
    events = [e for e in map(event_from_row, rows) if e is not None and e.bed != UNASSIGNED]

    # first()/last() without GROUP BY time() return the selected point's own timestamp.
    first = db.rows(f"SELECT first(seq) FROM vitals WHERE {window} GROUP BY ward, bed")
    last = db.rows(f"SELECT last(seq) FROM vitals WHERE {window} GROUP BY ward, bed")
    starts = {(r.get("ward", ""), r.get("bed", "")): r["time"] for r in first}
    monitored: dict[tuple[str, str], int] = {}
    for r in last:
        key = (r.get("ward", ""), r.get("bed", ""))
        if key[1] and key[1] != UNASSIGNED and key in starts:
            monitored[key] = max(0, r["time"] - starts[key])
    return events, monitored


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wardwatch alarms report`` (also ``python -m gateway.alarms.report``)."""
    parser.add_argument(
        "--since", type=parse_duration, default="24h", metavar="DURATION",
        help="window length ending now: e.g. 90m, 24h, 7d (default 24h)",
    )
    parser.add_argument("--ward", default=None, help="only this ward (default: all wards)")
    parser.add_argument(
        "--influx", default="http://127.0.0.1:8086", help="InfluxDB base URL serving InfluxQL /query"
    )
    parser.add_argument("--database", default="wardwatch", help="database (1.x) or DBRP-mapped name (2.x)")
    parser.add_argument("--top", type=_positive_int, default=5, metavar="N", help="beds to list (default 5)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {sec:02d}s"
    return f"{sec}s"


def _pct(share: float | None) -> str:
    return "--" if share is None else f"{share * 100:.0f} %"


def _num(value: float | None, spec: str = ".1f") -> str:
    return "--" if value is None else format(value, spec)


def render(report: Report):
    """Pure: the rich renderable for the human output (summary, codes, top beds)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    where = f"ward {report.ward}" if report.ward else "all wards"
    lines = [
        Text(f"WardWatch alarm load, {where}: secondary display, not a medical device", style="bold"),
        Text(f"window   {report.since} .. {report.until} ({report.hours:g} h)"),
        Text(f"beds     {report.beds}, {report.bed_days:.2f} bed-days (first to last reading per bed)"),
        Text(
            f"alarms   {report.alarms} raised, {_num(report.alarms_per_bed_day)} per bed-day"
            f" ({report.carried_over} carried over from before the window, {report.still_active} still active)"
        ),
        Text(
            f"active   {_dur(report.time_active_s)} in total, {_dur(report.mean_active_s)} mean per alarm"
        ),
        Text(f"acked    {_pct(report.share_acknowledged)} of alarms raised"),
        Text("priority " + ", ".join(f"{k} {v}" for k, v in report.by_priority.items())),
    ]
    if report.simulated_alarms:
        lines.append(Text(f"(includes {report.simulated_alarms} simulated alarms)", style="bold yellow"))
    elif report.includes_simulated:
        lines.append(Text("(time active includes simulated alarms raised before the window)", style="bold yellow"))

    codes = Table(title="by code (tune limits and delays here)", expand=False)
    for col in ("code", "alarms", "per bed-day", "active", "mean", "acked", "sim"):
        codes.add_column(col, justify="left" if col == "code" else "right", no_wrap=True)
    for c in report.by_code:
        codes.add_row(
            c.code, str(c.alarms), _num(c.per_bed_day), _dur(c.time_active_s), _dur(c.mean_active_s),
            _pct(c.share_acknowledged), str(c.simulated_alarms) if c.simulated_alarms else "",
        )

    caption = "SIM = includes simulated alarms" if report.includes_simulated else None
    beds = Table(title=f"top {len(report.top_beds)} beds", caption=caption, expand=False)
    for col in ("ward", "bed", "alarms", "per bed-day", "active", "acked", ""):
        beds.add_column(col, justify="left" if col in ("ward", "bed") else "right", no_wrap=True)
    for b in report.top_beds:
        beds.add_row(
            b.ward, b.bed, str(b.alarms), _num(b.per_bed_day), _dur(b.time_active_s),
            _pct(b.share_acknowledged), "SIM" if b.simulated else "",
        )
    return Group(*lines, codes, beds)


def run(args: argparse.Namespace) -> int:
    """Run the report; 0 on success, 1 (one line on stderr) when the database fails."""
    from gateway.wardview import InfluxQL

    db = InfluxQL(args.influx, args.database, os.environ.get("WARDWATCH_INFLUX_TOKEN", ""))
    until_ms = int(time.time() * 1000)
    since_ms = until_ms - args.since
    try:
        events, monitored = fetch(db, since_ms, until_ms, args.ward)
    except (OSError, ValueError) as exc:  # URLError/HTTPError/timeouts; ValueError: not JSON
        reason = getattr(exc, "reason", None) or exc
        print(f"wardwatch alarms report: cannot read InfluxDB at {args.influx}: {reason}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # InfluxQL error, e.g. database not found
        print(f"wardwatch alarms report: InfluxDB at {args.influx} answered: {exc}", file=sys.stderr)
        return 1
    report = compute(events, monitored, since_ms, until_ms, args.top, args.ward)
    if args.json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        from rich.console import Console

        Console().print(render(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wardwatch alarms report",
        description="Alarm load per ward: alarms per bed-day, time active, share acknowledged, top beds.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
