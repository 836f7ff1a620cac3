"""Static checks of the provisioning tree: what Grafana needs to load it as provisioned files."""

from __future__ import annotations

import json
import re

import pytest

from dashboards import build
from tests.dashboards.collect import (
    JSON_DIR, alert_rules, dashboards, datasource_uids, panels, provisioning_yaml, targets,
)

BOARDS = dashboards()
EXPECTED = {"ward-overview", "bed-detail", "alarms", "fleet-health", "gateway-health"}


def test_the_five_dashboards_exist():
    assert set(BOARDS) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_has_schema_version_fixed_uid_and_unique_panel_ids(name):
    board = BOARDS[name]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 39  # Grafana 10.x and later
    assert board["uid"] == f"ww-{name}"
    assert "id" not in board or board["id"] is None  # an id would tie it to one Grafana's database
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    assert board["title"]


def test_uids_are_unique_across_dashboards():
    uids = [b["uid"] for b in BOARDS.values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", sorted(JSON_DIR.glob("*.json")), ids=lambda p: p.name)
def test_no_import_placeholders(path):
    text = path.read_text()
    assert not re.search(r"\$\{DS_[A-Z0-9_]*\}", text)
    board = json.loads(text)
    assert "__inputs" not in board and "__requires" not in board


def test_provisioning_yaml_parses_with_api_version_1():
    for kind in ("datasources", "dashboards", "alerting"):
        docs = provisioning_yaml(kind)
        assert docs, kind
        assert all(d["apiVersion"] == 1 for d in docs)


def test_datasource_is_influxql_with_fixed_uid_and_settings_from_environment():
    (doc,) = provisioning_yaml("datasources")
    (ds,) = doc["datasources"]
    assert ds["uid"] == build.DS_UID and ds["type"] == "influxdb" and ds["jsonData"]["version"] == "InfluxQL"
    for value in (ds["url"], ds["user"], ds["jsonData"]["dbName"], ds["secureJsonData"]["password"]):
        assert re.fullmatch(r"\$\{WARDWATCH_[A-Z_]+\}", value)


def test_dashboard_provider_reads_the_json_folder_from_the_environment():
    (doc,) = provisioning_yaml("dashboards")
    (p,) = doc["providers"]
    assert p["type"] == "file" and p["options"]["path"] == "${WARDWATCH_GRAFANA_DASHBOARDS}"


def _refs(obj):
    """Every datasource reference {type, uid} anywhere in a JSON document."""
    if isinstance(obj, dict):
        if isinstance(obj.get("datasource"), dict):
            yield obj["datasource"]
        for v in obj.values():
            yield from _refs(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _refs(v)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_datasources_are_referenced_by_existing_uid(name):
    uids = datasource_uids()
    refs = list(_refs(BOARDS[name]))
    assert refs
    for ref in refs:
        assert ref.get("uid") in uids, ref


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_query_is_raw_influxql(name):
    ts = targets(BOARDS[name])
    assert ts
    for panel, t in ts:
        assert t["rawQuery"] is True and t["query"].lstrip().upper().startswith(("SELECT", "SHOW")), panel["title"]
        assert t["datasource"]["uid"] == build.DS_UID
    for var in BOARDS[name]["templating"]["list"]:
        if var["type"] == "query":
            assert var["query"].startswith("SHOW TAG VALUES FROM") and var["datasource"]["uid"] == build.DS_UID


def test_variables_ward_bed_instance():
    names = {n: [v["name"] for v in b["templating"]["list"]] for n, b in BOARDS.items()}
    assert "ward" in names["ward-overview"] and "bed" in names["ward-overview"]
    assert names["bed-detail"][:2] == ["ward", "bed"]
    assert "instance" in names["gateway-health"]
    bed = next(v for v in BOARDS["bed-detail"]["templating"]["list"] if v["name"] == "bed")
    assert bed["multi"] is False  # one bed's limits are drawn


def test_bed_detail_presets_and_downsampled_policy():
    board = BOARDS["bed-detail"]
    presets = [(o["from"], o["to"]) for o in board["timepicker"]["quick_ranges"]]
    assert presets == [("now-1h", "now"), ("now-12h", "now"), ("now-7d", "now")]
    for panel in panels(board)[:3]:
        queries = [t["query"] for t in panel["targets"]]
        assert any('FROM "autogen"."vitals"' in q and "$__interval_ms < 60000" in q for q in queries)
        assert any('FROM "trend"."vitals_1m"' in q and "$__interval_ms >= 60000" in q for q in queries)
        assert any(t["id"] == "configFromData" for t in panel["transformations"])
    (ann,) = [a for a in board["annotations"]["list"] if a["name"] == "Alarm events"]
    assert ann["query"].startswith("SELECT") and 'FROM "alarm"' in ann["query"]


def test_alert_rules_refer_to_existing_datasources_or_expressions():
    uids = datasource_uids() | {"__expr__"}
    rules = alert_rules()
    assert {r["uid"] for r in rules} == {"ww-ward-no-data", "ww-gateway-down", "ww-gateway-spooling",
                                         "ww-news2-high", "ww-news2-single3", "ww-devices-offline"}
    for r in rules:
        refs = {d["refId"] for d in r["data"]}
        assert r["condition"] in refs
        for d in r["data"]:
            assert d["datasourceUid"] in uids
            assert d["model"]["datasource"]["uid"] == d["datasourceUid"]
            if d["datasourceUid"] == "__expr__":
                assert d["model"]["type"] in ("reduce", "threshold", "math")
                assert d["model"]["expression"] in refs
            else:
                assert d["model"]["rawQuery"] is True and d["model"]["query"].startswith("SELECT")
                # File provisioning interpolates environment variables in queries: no $ at all.
                assert "$" not in d["model"]["query"]


def test_contact_point_and_policy():
    (doc,) = provisioning_yaml("alerting")
    (cp,) = doc["contactPoints"]
    types = {r["type"]: r["settings"] for r in cp["receivers"]}
    assert types["email"]["addresses"] == "${WARDWATCH_ALERT_EMAIL}"
    assert types["webhook"]["url"] == "${WARDWATCH_ALERT_WEBHOOK_URL}"
    (policy,) = doc["policies"]
    assert policy["receiver"] == cp["name"]
    # Labels are interpolated by Grafana: none may carry a $.
    for r in alert_rules():
        assert all("$" not in v for v in r["labels"].values())
