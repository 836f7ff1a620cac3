"""InfluxQL over HTTP: the one reader of what the gateway stored.

Who uses it: the ward view, the alarm load report, the demo, the local stack and the tests.
It speaks ``/query`` with ``epoch=ms`` (InfluxDB 1.x; 2.x through a DBRP mapping; 3 Core),
so every time comes back as epoch milliseconds. Values that go into a query pass through
``quote_string`` or ``quote_ident``, the one quoting rule.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request


class InfluxQLError(RuntimeError):
    """The database answered the query with an error (e.g. database not found)."""


def quote_string(value: str) -> str:
    """A string literal: ``'w1'``; backslashes and single quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def quote_ident(name: str) -> str:
    """An identifier (database, measurement, field, tag): ``"name"``; ``\\`` and ``"`` escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxQL:
    """One database at ``url``. ``rows(q)`` flattens series into dicts; ``series(q)`` keeps them.

    ``token`` is sent as ``Authorization: Token ...`` when set. Raises ``OSError`` (URLError,
    timeouts) when the database cannot be reached and ``InfluxQLError`` when it refuses the query.
    """

    def __init__(self, url: str, database: str, token: str = "", timeout_s: float = 5.0):
        self.url = url.rstrip("/")
        self.database = database
        self.token = token
        self.timeout_s = timeout_s

    def series(self, q: str, method: str = "GET") -> list[dict]:
        """The series of the first statement of ``q`` (``[]`` when empty). POST for statements
        that change the database (``CREATE DATABASE``, ``DROP``)."""
        params = urllib.parse.urlencode({"db": self.database, "q": q, "epoch": "ms"})
        if method == "GET":
            req = urllib.request.Request(f"{self.url}/query?{params}")
        else:
            req = urllib.request.Request(f"{self.url}/query", data=params.encode(), method="POST")
        if self.token:
            req.add_header("Authorization", f"Token {self.token}")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as r:
            result = json.load(r)["results"][0]
        if "error" in result:
            raise InfluxQLError(result["error"])
        return result.get("series", [])

    def rows(self, q: str) -> list[dict]:
        """Every row of every series as a dict, the series' tags merged into each row."""
        out = []
        for series in self.series(q):
            tags = series.get("tags", {})
            for values in series["values"]:
                row = dict(zip(series["columns"], values))
                row.update(tags)
                out.append(row)
        return out
