"""``wardwatch provision influx``: the database, its retention policies and the 1-minute trend.

InfluxDB 1.x only (the statements are InfluxQL DDL); 2.x and 3.x are set up by hand as
docs/design.md ("Retention and trends") describes. What it makes:

- the database (default ``wardwatch``);
- ``autogen``, the raw policy, DEFAULT, ``--raw-days`` (30). It keeps the name 1.x gives the
  default policy because the gateway writes to bucket ``wardwatch/autogen`` and every reader
  queries the default policy;
- ``trend``, the long-term policy, ``--trend-days`` (730);
- the continuous query ``vitals_1m``: per minute, ward and bed, mean/min/max of hr, spo2, temp,
  pi and sqi from ``autogen.vitals`` into ``trend.vitals_1m`` (fields ``hr_mean``, ``hr_min``,
  ``hr_max``, ...), recomputing the last 10 minutes every minute so readings that arrive late
  (replayed outboxes, the gateway's spool) still count.

``downsample_select`` is the one text of the aggregation: the CQ wraps it, ``backfill`` adds a
time range to it. Running twice changes nothing and says so. The token comes only from
``WARDWATCH_INFLUX_TOKEN``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sys
import urllib.error
from dataclasses import dataclass

from gateway.influxql import InfluxQL, InfluxQLError, quote_ident, quote_string

HELP = "InfluxDB 1.x: database, raw and trend retention policies, 1-minute downsampling continuous query"

RAW_POLICY = "autogen"
TREND_POLICY = "trend"
SOURCE = "vitals"
TREND_MEASUREMENT = "vitals_1m"
CQ_NAME = "vitals_1m"
FIELDS = ("hr", "spo2", "temp", "pi", "sqi")
AGGREGATES = ("mean", "min", "max")
RESAMPLE_FOR = "10m"
TOKEN_ENV = "WARDWATCH_INFLUX_TOKEN"

_H = 3600


def shard_hours(days: int) -> int:
    """InfluxDB's own default shard group duration for a policy of ``days``: 1 h under 2 days,
    1 day up to 6 months, 7 days beyond."""
    if days < 2:
        return 1
    if days <= 182:
        return 24
    return 7 * 24


def _duration(hours: int) -> str:
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


def parse_duration_hours(text: str) -> float:
    """``SHOW RETENTION POLICIES`` durations (``720h0m0s``, ``0s`` = infinite) in hours."""
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)", text):
        total += float(value) * {"h": 1, "m": 1 / 60, "s": 1 / _H, "ms": 1e-3 / _H, "us": 1e-6 / _H,
                                 "µs": 1e-6 / _H, "ns": 1e-9 / _H}[unit]
    return total


@dataclass(frozen=True)
class Policy:
    name: str
    days: int
    default: bool

    @property
    def hours(self) -> int:
        return self.days * 24


def policies(raw_days: int, trend_days: int) -> list[Policy]:
    return [Policy(RAW_POLICY, raw_days, True), Policy(TREND_POLICY, trend_days, False)]


def create_database(database: str) -> str:
    return f"CREATE DATABASE {quote_ident(database)}"


def _policy_clause(p: Policy) -> str:
    clause = f"DURATION {_duration(p.hours)} REPLICATION 1 SHARD DURATION {_duration(shard_hours(p.days))}"
    return clause + (" DEFAULT" if p.default else "")


def create_policy(database: str, p: Policy) -> str:
    return f"CREATE RETENTION POLICY {quote_ident(p.name)} ON {quote_ident(database)} {_policy_clause(p)}"


def alter_policy(database: str, p: Policy) -> str:
    return f"ALTER RETENTION POLICY {quote_ident(p.name)} ON {quote_ident(database)} {_policy_clause(p)}"


def downsample_select(database: str, where: str = "") -> str:
    """The aggregation, the one text both the CQ and a backfill run. ``where`` is a condition
    on time (a CQ has none: InfluxDB supplies its interval)."""
    cols = ", ".join(
        f"{agg}({quote_ident(f)}) AS {quote_ident(f'{f}_{agg}')}" for f in FIELDS for agg in AGGREGATES
    )
    into = f"{quote_ident(database)}.{quote_ident(TREND_POLICY)}.{quote_ident(TREND_MEASUREMENT)}"
    source = f"{quote_ident(database)}.{quote_ident(RAW_POLICY)}.{quote_ident(SOURCE)}"
    cond = f" WHERE {where}" if where else ""
    return f"SELECT {cols} INTO {into} FROM {source}{cond} GROUP BY time(1m), {quote_ident('ward')}, {quote_ident('bed')}"


def create_cq(database: str) -> str:
    return (
        f"CREATE CONTINUOUS QUERY {quote_ident(CQ_NAME)} ON {quote_ident(database)} "
        f"RESAMPLE EVERY 1m FOR {RESAMPLE_FOR} BEGIN {downsample_select(database)} END"
    )


def drop_cq(database: str) -> str:
    return f"DROP CONTINUOUS QUERY {quote_ident(CQ_NAME)} ON {quote_ident(database)}"


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def backfill(database: str, start: dt.datetime, end: dt.datetime) -> str:
    """The CQ's statement over ``[start, end)``: fills trends for data the CQ did not see."""
    where = f"time >= {quote_string(_rfc3339(start))} AND time < {quote_string(_rfc3339(end))}"
    return downsample_select(database, where)


def _normal(q: str) -> str:
    """A CQ's text as compared with what ``SHOW CONTINUOUS QUERIES`` returns (InfluxDB quotes
    identifiers only when it must)."""
    return re.sub(r"\s+", " ", q.replace('"', "")).strip()


@dataclass
class State:
    """What the database holds: ``policies`` maps name -> (duration h, shard h, default)."""

    database_exists: bool
    policies: dict[str, tuple[float, float, bool]]
    cq: str | None  # the stored CQ text, None when absent


def plan(database: str, state: State, raw_days: int, trend_days: int) -> list[tuple[str, list[str]]]:
    """``(message, statements)`` per policy and the CQ, in order; no statements = already as
    wanted. The database exists (``run`` creates it first: InfluxDB may then add ``autogen``)."""
    steps: list[tuple[str, list[str]]] = []
    for p in policies(raw_days, trend_days):
        want = (float(p.hours), float(shard_hours(p.days)), p.default)
        what = f"retention policy {p.name}: {p.days}d{' default' if p.default else ''}"
        have = state.policies.get(p.name)
        if have is None:
            steps.append((f"{what}: create", [create_policy(database, p)]))
        elif have == want:
            steps.append((f"{what}: unchanged", []))
        else:
            was = f"{_duration(int(have[0])) if have[0] else 'INF'}{' default' if have[2] else ''}"
            steps.append((f"{what}: alter (was {was})", [alter_policy(database, p)]))
    cq = create_cq(database)
    if state.cq is None:
        steps.append((f"continuous query {CQ_NAME}: create", [cq]))
    elif _normal(state.cq) == _normal(cq):
        steps.append((f"continuous query {CQ_NAME}: unchanged", []))
    else:
        steps.append((f"continuous query {CQ_NAME}: replace", [drop_cq(database), cq]))
    return steps


class _Tracked:
    """An ``InfluxQL`` that remembers the last statement it sent (for the error line)."""

    def __init__(self, ql: InfluxQL):
        self.ql = ql
        self.database = ql.database
        self.last = ""

    def series(self, q: str, method: str = "GET") -> list[dict]:
        self.last = q
        return self.ql.series(q, method)

    def rows(self, q: str) -> list[dict]:
        self.last = q
        return self.ql.rows(q)


def read_state(ql) -> State:
    dbs = {row["name"] for row in ql.rows("SHOW DATABASES")}
    if ql.database not in dbs:
        return State(False, {}, None)
    pols = {
        r["name"]: (parse_duration_hours(r["duration"]), parse_duration_hours(r["shardGroupDuration"]), bool(r["default"]))
        for r in ql.rows(f"SHOW RETENTION POLICIES ON {quote_ident(ql.database)}")
    }
    cq = None
    for series in ql.series("SHOW CONTINUOUS QUERIES"):
        if series.get("name") == ql.database:
            for values in series.get("values", []):
                row = dict(zip(series["columns"], values))
                if row["name"] == CQ_NAME:
                    cq = row["query"]
    return State(True, pols, cq)


def _days(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1 day")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default="http://127.0.0.1:8086", help="InfluxDB 1.x HTTP API (default %(default)s)")
    p.add_argument("--database", default="wardwatch", help="database (default %(default)s)")
    p.add_argument("--raw-days", type=_days, default=30, help="raw readings kept, days (default %(default)s)")
    p.add_argument("--trend-days", type=_days, default=730, help="1-minute trends kept, days (default %(default)s)")
    p.epilog = f"A token or user:password, when the database needs one, comes from {TOKEN_ENV} only."


def run(args) -> int:
    ql = _Tracked(InfluxQL(args.url, args.database, token=os.environ.get(TOKEN_ENV, ""), timeout_s=30))
    try:
        state = read_state(ql)
        changed = 0
        if state.database_exists:
            print(f"database {args.database}: exists")
        else:
            ql.series(create_database(args.database), method="POST")
            print(f"database {args.database}: create")
            changed += 1
            state = read_state(ql)
        steps = plan(args.database, state, args.raw_days, args.trend_days)
        for message, statements in steps:
            for statement in statements:
                ql.series(statement, method="POST")
            changed += bool(statements)
            print(message)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace").strip()[:200]
        print(f"wardwatch provision influx: {args.url} refused {ql.last}: HTTP {exc.code} {detail}", file=sys.stderr)
        return 1
    except InfluxQLError as exc:
        print(f"wardwatch provision influx: {args.url} refused {ql.last}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        print(f"wardwatch provision influx: cannot reach InfluxDB at {args.url}: {reason}", file=sys.stderr)
        return 1
    print(f"{changed} change(s)" if changed else "nothing to change")
    return 0
