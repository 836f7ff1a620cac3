"""``provisioning.influx``: the InfluxQL it builds and what it plans, from tables (no database)."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from provisioning import influx
from provisioning.influx import Policy, State

AGG = (
    'mean("hr") AS "hr_mean", min("hr") AS "hr_min", max("hr") AS "hr_max", '
    'mean("spo2") AS "spo2_mean", min("spo2") AS "spo2_min", max("spo2") AS "spo2_max", '
    'mean("temp") AS "temp_mean", min("temp") AS "temp_min", max("temp") AS "temp_max", '
    'mean("pi") AS "pi_mean", min("pi") AS "pi_min", max("pi") AS "pi_max", '
    'mean("sqi") AS "sqi_mean", min("sqi") AS "sqi_min", max("sqi") AS "sqi_max"'
)
SELECT = (
    f'SELECT {AGG} INTO "wardwatch"."trend"."vitals_1m" FROM "wardwatch"."autogen"."vitals" '
    'GROUP BY time(1m), "ward", "bed"'
)


@pytest.mark.parametrize("days,hours", [(1, 1), (2, 24), (30, 24), (182, 24), (183, 168), (730, 168)])
def test_shard_duration_follows_influxdbs_default_rule(days, hours):
    assert influx.shard_hours(days) == hours


@pytest.mark.parametrize("text,hours", [("720h0m0s", 720), ("17520h0m0s", 17520), ("0s", 0), ("1h30m0s", 1.5),
                                        ("24h0m0s", 24)])
def test_show_retention_policies_durations_parse(text, hours):
    assert influx.parse_duration_hours(text) == hours


@pytest.mark.parametrize("policy,statement", [
    (Policy("autogen", 30, True),
     'CREATE RETENTION POLICY "autogen" ON "wardwatch" DURATION 30d REPLICATION 1 SHARD DURATION 1d DEFAULT'),
    (Policy("trend", 730, False),
     'CREATE RETENTION POLICY "trend" ON "wardwatch" DURATION 730d REPLICATION 1 SHARD DURATION 7d'),
    (Policy("autogen", 1, True),
     'CREATE RETENTION POLICY "autogen" ON "wardwatch" DURATION 1d REPLICATION 1 SHARD DURATION 1h DEFAULT'),
])
def test_create_policy(policy, statement):
    assert influx.create_policy("wardwatch", policy) == statement
    assert influx.alter_policy("wardwatch", policy) == statement.replace("CREATE", "ALTER", 1)


def test_downsample_select_is_the_cq_body_and_the_backfill():
    assert influx.downsample_select("wardwatch") == SELECT
    assert influx.create_cq("wardwatch") == (
        f'CREATE CONTINUOUS QUERY "vitals_1m" ON "wardwatch" RESAMPLE EVERY 1m FOR 10m BEGIN {SELECT} END'
    )
    start = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc)
    assert influx.backfill("wardwatch", start, start + dt.timedelta(minutes=5)) == SELECT.replace(
        " GROUP BY", " WHERE time >= '2026-01-02T03:04:00Z' AND time < '2026-01-02T03:09:00Z' GROUP BY")
    assert influx.drop_cq("wardwatch") == 'DROP CONTINUOUS QUERY "vitals_1m" ON "wardwatch"'


def test_every_identifier_is_quoted():
    odd = 'ward "a"\\b'
    assert influx.create_database(odd) == 'CREATE DATABASE "ward \\"a\\"\\\\b"'
    assert ' ON "ward \\"a\\"\\\\b" ' in influx.create_cq(odd)
    assert 'INTO "ward \\"a\\"\\\\b"."trend"."vitals_1m"' in influx.downsample_select(odd)


# What SHOW CONTINUOUS QUERIES returns on InfluxDB 1.6 for our CQ (quotes only where needed).
STORED_CQ = influx.create_cq("wardwatch").replace('"', "")
DONE = {"autogen": (720.0, 24.0, True), "trend": (17520.0, 168.0, False)}


@pytest.mark.parametrize("state,expected", [
    (State(True, {}, None), [  # retention-autocreate = false
        ("retention policy autogen: 30d default: create", [influx.create_policy("wardwatch", Policy("autogen", 30, True))]),
        ("retention policy trend: 730d: create", [influx.create_policy("wardwatch", Policy("trend", 730, False))]),
        ("continuous query vitals_1m: create", [influx.create_cq("wardwatch")]),
    ]),
    (State(True, {"autogen": (0.0, 168.0, True)}, None), [
        ("retention policy autogen: 30d default: alter (was INF default)",
         [influx.alter_policy("wardwatch", Policy("autogen", 30, True))]),
        ("retention policy trend: 730d: create", [influx.create_policy("wardwatch", Policy("trend", 730, False))]),
        ("continuous query vitals_1m: create", [influx.create_cq("wardwatch")]),
    ]),
    (State(True, DONE, STORED_CQ), [
        ("retention policy autogen: 30d default: unchanged", []),
        ("retention policy trend: 730d: unchanged", []),
        ("continuous query vitals_1m: unchanged", []),
    ]),
    (State(True, {**DONE, "trend": (17520.0, 168.0, True)}, STORED_CQ.replace("FOR 10m", "FOR 5m")), [
        ("retention policy autogen: 30d default: unchanged", []),
        ("retention policy trend: 730d: alter (was 730d default)",
         [influx.alter_policy("wardwatch", Policy("trend", 730, False))]),
        ("continuous query vitals_1m: replace", [influx.drop_cq("wardwatch"), influx.create_cq("wardwatch")]),
    ]),
])
def test_plan(state, expected):
    assert influx.plan("wardwatch", state, 30, 730) == expected


def test_plan_with_other_durations_alters_both_policies():
    steps = influx.plan("wardwatch", State(True, DONE, STORED_CQ), 7, 365)
    assert [m for m, _ in steps][0:2] == ["retention policy autogen: 7d default: alter (was 30d default)",
                                          "retention policy trend: 365d: alter (was 730d)"]


def test_arguments_defaults_and_no_token_option():
    p = argparse.ArgumentParser()
    influx.add_arguments(p)
    args = p.parse_args([])
    assert (args.url, args.database, args.raw_days, args.trend_days) == ("http://127.0.0.1:8086", "wardwatch", 30, 730)
    assert not any("token" in a for action in p._actions for a in action.option_strings)
    with pytest.raises(SystemExit):
        p.parse_args(["--raw-days", "0"])


def test_registered_as_a_provision_target():
    from provisioning.cli import TARGETS

    assert ("influx", "provisioning.influx") in TARGETS
