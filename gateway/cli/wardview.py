"""Live terminal ward view (rich): per bed HR, SpO2, temperature, probe, NEWS2, last seen,
the ward's active alarms and the gateway's rejects.

It reads what the gateway stored, through InfluxQL (``/query``: InfluxDB 1.x, 2.x with a
DBRP mapping, 3 Core), so what it shows is what reached the database. Who calls it:
``wardwatch ward`` and the demo.
"""

from __future__ import annotations

import time

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..clinical.rules import PRIORITY_RANK, Limits, breached, limits_in_force
from ..influxql import InfluxQL, InfluxQLError, quote_string


def _fmt(value, spec: str = "") -> str:
    return "--" if value is None else format(value, spec)


def snapshot(db: InfluxQL, ward: str) -> tuple[list[dict], dict[str, int]]:
    """The latest reading per device in ``ward`` (last 10 min) and reject counts by reason."""
    w = quote_string(ward)
    beds = db.rows(
        f"SELECT * FROM vitals WHERE ward={w} AND time > now() - 10m GROUP BY device ORDER BY time DESC LIMIT 1"
    )
    rejects = {
        r["reason"]: r["sum"]
        for r in db.rows("SELECT sum(count) FROM rejected WHERE time > now() - 24h GROUP BY reason")
    }
    return sorted(beds, key=lambda r: (r.get("bed") or "", r.get("device") or "")), rejects


def active_alarms(rows: list[dict]) -> list[dict]:
    """Pure: the alarms not yet cleared, from ``alarm`` event rows (oldest first).

    Each alarm's last event tells its state; highest priority first, then oldest.
    """
    last: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: r["time"]):
        if row.get("alarm_id"):
            last[row["alarm_id"]] = row
    live = [r for r in last.values() if r.get("state") != "cleared"]
    return sorted(live, key=lambda r: (-PRIORITY_RANK.get(r.get("priority"), 0), r.get("since_ms") or 0))


def alarms_snapshot(db: InfluxQL, ward: str) -> tuple[list[dict], dict[str, dict]]:
    """Active alarms (last 24 h of events) and the latest NEWS2 per bed (last 10 min)."""
    w = quote_string(ward)
    alarms = active_alarms(db.rows(f"SELECT * FROM alarm WHERE ward={w} AND time > now() - 24h"))
    news2 = {
        r["bed"]: r
        for r in db.rows(
            f"SELECT last(score) AS score, last(band) AS band, last(partial) AS partial FROM news2 "
            f"WHERE ward={w} AND time > now() - 10m GROUP BY bed"
        )
    }
    return alarms, news2


def limits_snapshot(db: InfluxQL, ward: str) -> dict[str, dict]:
    """The limits in force per bed of ``ward``, as the gateway last wrote them (``limits``)."""
    rows = db.rows(f"SELECT last(*) FROM limits WHERE ward={quote_string(ward)} GROUP BY bed")
    return {r["bed"]: {k[5:]: v for k, v in r.items() if k.startswith("last_") and v is not None} for r in rows}


MARK = {"high": ("***", "bold red"), "medium": ("**", "bold yellow"), "low": ("*", "yellow")}
# A value past a limit: its parameter's colour, red whatever the parameter when the limit is high priority.
OUT_OF_LIMIT = {"spo2": "bold red", "hr": "bold yellow", "temp": "yellow"}


def _style(limits: dict, param: str, value) -> str:
    if value is None:
        return ""
    priority = breached(limits, param, value)
    return "" if priority is None else "bold red" if priority == "high" else OUT_OF_LIMIT[param]


def render(ward: str, beds: list[dict], rejects: dict[str, int], now_ms: int, note: str = "",
           alarms: list[dict] | None = None, news2: dict[str, dict] | None = None,
           limits: dict[str, dict] | None = None) -> Group:
    """Pure: build the rich renderable for one refresh.

    ``limits`` maps a bed to its limits in force (``limits_snapshot``); a bed without them is
    coloured by the built-in limits of ``gateway.clinical.rules``.
    """
    table = Table(
        title=f"WardWatch ward {ward}: secondary display, not a medical device",
        caption="HR /min, SpO2 %, Temp °C, PI %; NEWS2 p = partial; SIM = simulated device",
        expand=True,
    )
    news2 = news2 or {}
    limits = limits or {}
    for col in ("bed", "device", "HR", "SpO2", "Temp", "PI", "SQI", "probe", "NEWS2", "seen", ""):
        table.add_column(col, justify="left" if col in ("bed", "device", "probe") else "right", no_wrap=True)
    for r in beds:
        age = (now_ms - r["time"]) / 1000
        spo2 = r.get("spo2")
        hr = r.get("hr")
        temp = r.get("temp")
        bed = r.get("bed") or ""
        in_force = limits.get(bed) or limits_in_force(Limits().settings_for(ward, bed))
        style_spo2 = _style(in_force, "spo2", spo2)
        style_hr = _style(in_force, "hr", hr)
        style_temp = _style(in_force, "temp", temp)
        probe = r.get("probe") or "?"
        table.add_row(
            r.get("bed") or "?",
            r.get("device") or "?",
            Text(_fmt(hr), style=style_hr),
            Text(_fmt(spo2), style=style_spo2),
            Text(_fmt(temp, ".1f"), style=style_temp),
            _fmt(r.get("pi"), ".1f"),
            _fmt(r.get("sqi"), ".2f"),
            Text(probe, style="cyan" if probe != "ok" else ""),
            _news2_cell(news2.get(r.get("bed") or "")),
            Text(f"{age:.0f}s ago", style="red" if age > 30 else ""),
            "SIM" if r.get("sim") else "",
        )
    total = sum(rejects.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(rejects.items())) or "none"
    footer = Text(f"gateway rejects (24 h): {total} ({detail})   {note}")
    if alarms is None:
        return Group(table, footer)
    lines = Table(title="active alarms", expand=True, show_header=False, box=None)
    lines.add_column("alarm")
    for a in alarms:
        mark, style = ("INOP", "cyan") if a.get("kind") == "technical" else MARK.get(a.get("priority"), ("?", ""))
        since = wardclock(a.get("since_ms"))
        state = {"acked": " (acknowledged)", "latched": " (latched: acknowledge)"}.get(a.get("state"), "")
        sim = " [SIMULATED]" if a.get("simulated") else ""
        lines.add_row(Text(f"{mark} bed {a.get('bed')}  {a.get('message')}  since {since}{state}{sim}", style=style))
    if not alarms:
        lines.add_row(Text("none", style="dim"))
    return Group(table, lines, footer)


def wardclock(ms) -> str:
    return "--" if ms is None else time.strftime("%H:%M:%S", time.localtime(ms / 1000))


def _news2_cell(row: dict | None) -> Text:
    if not row or row.get("score") is None:
        return Text("--")
    band = row.get("band") or ""
    style = {"high": "bold red", "medium": "bold yellow", "low-medium": "yellow"}.get(band, "")
    return Text(f"{row['score']}{'p' if row.get('partial') else ''}", style=style)


def run(db: InfluxQL, ward: str, refresh_s: float = 1.0, duration_s: float | None = None) -> None:
    """Refresh the view until Ctrl-C (or ``duration_s``)."""
    deadline = None if duration_s is None else time.monotonic() + duration_s
    with Live(render(ward, [], {}, 0, "waiting for data..."), refresh_per_second=4, screen=False) as live:
        while deadline is None or time.monotonic() < deadline:
            try:
                beds, rejects = snapshot(db, ward)
                alarms, news2 = alarms_snapshot(db, ward)
                limits = limits_snapshot(db, ward)
                live.update(render(ward, beds, rejects, int(time.time() * 1000), "Ctrl-C to stop", alarms, news2, limits))
            except (OSError, InfluxQLError) as exc:
                live.update(render(ward, [], {}, 0, f"database unreachable: {exc}"))
            time.sleep(refresh_s)
