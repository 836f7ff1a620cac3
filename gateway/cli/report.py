"""``wardwatch alarms report --since 24h``: the alarm load of a ward, read from InfluxDB.

The figures and their definitions are ``gateway.clinical.alarmload`` (pure, tested from
tables); this module reads the ``alarm`` and ``vitals`` measurements through InfluxQL
(``fetch``), renders the report with rich or as JSON, and parses the command line.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

import msgspec

from ..clinical.alarmload import DAY_MS, NOT_BEDS, Report, compute, event_from_row
from ..influxql import InfluxQL, quote_string

# Look back this far before the window for alarms raised earlier and still active in it.
DEFAULT_LOOKBACK_MS = 7 * DAY_MS

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



def fetch(
    db, since_ms: int, until_ms: int, ward: str | None = None, lookback_ms: int = DEFAULT_LOOKBACK_MS
) -> tuple[list[AlarmEvent], dict[tuple[str, str], int]]:
    """Read alarm events and monitored time per bed for ``[since_ms, until_ms)``.

    ``db`` is an ``InfluxQL`` client (anything with ``rows(q)``). Alarm events:
    every event inside the window, plus the ``raised``/``cleared`` events of the
    ``lookback_ms`` before it, so alarms raised earlier and still active are seen (an alarm
    raised before the look-back and silent through the window is missed). Monitored time:
    last minus first ``vitals`` reading per (ward, bed) inside the window. Bed ``unassigned``
    is dropped. Raises ``OSError`` when the database cannot be reached and ``RuntimeError``
    on an InfluxQL error. Four queries, InfluxDB 1.6 compatible.
    """
    w = f" AND ward = {quote_string(ward)}" if ward else ""
    window = f"time >= {since_ms}ms AND time < {until_ms}ms{w}"
    rows = db.rows(f"SELECT * FROM alarm WHERE {window}")
    rows += db.rows(
        f"SELECT * FROM alarm WHERE time >= {since_ms - lookback_ms}ms AND time < {since_ms}ms{w}"
        " AND (event = 'raised' OR event = 'cleared')"
    )
    events = [e for e in map(event_from_row, rows) if e is not None and e.bed not in NOT_BEDS]

    # first()/last() without GROUP BY time() return the selected point's own timestamp.
    first = db.rows(f"SELECT first(seq) FROM vitals WHERE {window} GROUP BY ward, bed")
    last = db.rows(f"SELECT last(seq) FROM vitals WHERE {window} GROUP BY ward, bed")
    starts = {(r.get("ward", ""), r.get("bed", "")): r["time"] for r in first}
    monitored: dict[tuple[str, str], int] = {}
    for r in last:
        key = (r.get("ward", ""), r.get("bed", ""))
        if key[1] and key[1] not in NOT_BEDS and key in starts:
            monitored[key] = max(0, r["time"] - starts[key])
    return events, monitored


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``wardwatch alarms report`` (also ``python -m gateway.cli.report``)."""
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
