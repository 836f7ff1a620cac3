"""Live terminal ward view (rich): per bed HR, SpO2, temperature, probe, last seen, rejects.

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


def render(ward: str, beds: list[dict], rejects: dict[str, int], now_ms: int, note: str = "") -> Group:
    """Pure: build the rich renderable for one refresh."""
    table = Table(
        title=f"WardWatch ward {ward}: secondary display, not a medical device",
        caption="HR /min, SpO2 %, Temp °C, PI %; SIM = simulated device",
        expand=True,
    )
    for col in ("bed", "device", "HR", "SpO2", "Temp", "PI", "SQI", "probe", "seen", ""):
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
            Text(f"{age:.0f}s ago", style="red" if age > 30 else ""),
            "SIM" if r.get("sim") else "",
        )
    total = sum(rejects.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(rejects.items())) or "none"
    footer = Text(f"gateway rejects (24 h): {total} ({detail})   {note}")
    return Group(table, footer)


def run(db: InfluxQL, ward: str, refresh_s: float = 1.0, duration_s: float | None = None) -> None:
    """Refresh the view until Ctrl-C (or ``duration_s``)."""
    deadline = None if duration_s is None else time.monotonic() + duration_s
    with Live(render(ward, [], {}, 0, "waiting for data..."), refresh_per_second=4, screen=False) as live:
        while deadline is None or time.monotonic() < deadline:
            try:
                beds, rejects = snapshot(db, ward)
                live.update(render(ward, beds, rejects, int(time.time() * 1000), "Ctrl-C to stop"))
            except OSError as exc:
                live.update(render(ward, [], {}, 0, f"database unreachable: {exc}"))
            time.sleep(refresh_s)
