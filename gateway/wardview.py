"""Live terminal ward view (rich): per bed HR, SpO2, temperature, probe, NEWS2, last seen,
the ward's active alarms and the gateway's rejects.

It reads what the gateway stored, through InfluxQL (``/query``: InfluxDB 1.x, 2.x with a
DBRP mapping, 3 Core), so what it shows is what reached the database. Who calls it:
``wardwatch ward`` and the demo.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


class InfluxQL:
    """Minimal InfluxQL-over-HTTP reader. ``rows(q)`` flattens series into dicts."""

    def __init__(self, url: str, database: str, token: str = ""):
        self.url = url.rstrip("/")
        self.database = database
        self.token = token

    def rows(self, q: str) -> list[dict]:
        params = urllib.parse.urlencode({"db": self.database, "q": q, "epoch": "ms"})
        req = urllib.request.Request(f"{self.url}/query?{params}")
        if self.token:
            req.add_header("Authorization", f"Token {self.token}")
        with urllib.request.urlopen(req, timeout=5) as r:
            result = json.load(r)["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        out = []
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(series.get("tags", {}))
                out.append(row)
        return out


def _fmt(value, spec: str = "") -> str:
    return "--" if value is None else format(value, spec)


def snapshot(db: InfluxQL, ward: str) -> tuple[list[dict], dict[str, int]]:
    """The latest reading per device in ``ward`` (last 10 min) and reject counts by reason."""
    w = ward.replace("'", "")
    beds = db.rows(
        f"SELECT * FROM vitals WHERE ward='{w}' AND time > now() - 10m GROUP BY device ORDER BY time DESC LIMIT 1"
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
    rank = {"high": 0, "medium": 1, "low": 2}
    live = [r for r in last.values() if r.get("state") != "cleared"]
    return sorted(live, key=lambda r: (rank.get(r.get("priority"), 3), r.get("since_ms") or 0))


def alarms_snapshot(db: InfluxQL, ward: str) -> tuple[list[dict], dict[str, dict]]:
    """Active alarms (last 24 h of events) and the latest NEWS2 per bed (last 10 min)."""
    w = ward.replace("'", "")
    alarms = active_alarms(db.rows(f"SELECT * FROM alarm WHERE ward='{w}' AND time > now() - 24h"))
    news2 = {
        r["bed"]: r
        for r in db.rows(
            f"SELECT last(score) AS score, last(band) AS band, last(partial) AS partial FROM news2 "
            f"WHERE ward='{w}' AND time > now() - 10m GROUP BY bed"
        )
    }
    return alarms, news2


MARK = {"high": ("***", "bold red"), "medium": ("**", "bold yellow"), "low": ("*", "yellow")}


def render(ward: str, beds: list[dict], rejects: dict[str, int], now_ms: int, note: str = "",
           alarms: list[dict] | None = None, news2: dict[str, dict] | None = None) -> Group:
    """Pure: build the rich renderable for one refresh."""
    table = Table(
        title=f"WardWatch ward {ward}: secondary display, not a medical device",
        caption="HR /min, SpO2 %, Temp °C, PI %; NEWS2 p = partial; SIM = simulated device",
        expand=True,
    )
    news2 = news2 or {}
    for col in ("bed", "device", "HR", "SpO2", "Temp", "PI", "SQI", "probe", "NEWS2", "seen", ""):
        table.add_column(col, justify="left" if col in ("bed", "device", "probe") else "right", no_wrap=True)
    for r in beds:
        age = (now_ms - r["time"]) / 1000
        spo2 = r.get("spo2")
        hr = r.get("hr")
        temp = r.get("temp")
        style_spo2 = "bold red" if spo2 is not None and spo2 < 90 else ""
        style_hr = "bold yellow" if hr is not None and (hr > 120 or hr < 50) else ""
        style_temp = "yellow" if temp is not None and (temp > 39.0 or temp < 35.0) else ""
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
                live.update(render(ward, beds, rejects, int(time.time() * 1000), "Ctrl-C to stop", alarms, news2))
            except OSError as exc:
                live.update(render(ward, [], {}, 0, f"database unreachable: {exc}"))
            time.sleep(refresh_s)
