"""``wardwatch dashboards push`` against a server that checks Grafana's documented HTTP API.

Grafana itself is not installable here (no Debian, PyPI or npm package ships the server), so
these tests run push, through grafana-client and real HTTP, against ``fake_grafana.FakeGrafana``:
a local server that checks every request (method, path, headers, body fields and types) against
Grafana's HTTP API documentation and records any departure as a violation. It keeps state, so
the idempotency tests read back what an earlier push stored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from dashboards import push
from gateway.cli.main import main as wardwatch
from tests.dashboards.collect import ROOT
from tests.dashboards.fake_grafana import FakeGrafana

TOKEN = "glsa_test-token-5f3c9a1e"  # must never appear in any output
ENV = {
    "WARDWATCH_INFLUX_URL": "http://influx.ward.example:8086",
    "WARDWATCH_INFLUX_DATABASE": "wardwatch",
    "WARDWATCH_INFLUX_USER": "grafana",
    "WARDWATCH_INFLUX_PASSWORD": "influx-secret-9d1",
    "WARDWATCH_ALERT_EMAIL": "ward-team@hospital.example",
    "WARDWATCH_ALERT_WEBHOOK_URL": "https://hooks.hospital.example/wardwatch",
}

DASHBOARD_UIDS = sorted(json.loads(p.read_text())["uid"] for p in (ROOT / "json").glob("*.json"))
ALERTING = yaml.safe_load(next((ROOT / "provisioning" / "alerting").glob("*.yaml")).read_text())
RULE_UIDS = sorted(r["uid"] for g in ALERTING["groups"] for r in g["rules"])
RECEIVER_UIDS = sorted(r["uid"] for cp in ALERTING["contactPoints"] for r in cp["receivers"])
N_OBJECTS = 1 + 1 + len(DASHBOARD_UIDS) + len(RULE_UIDS) + len(ALERTING["groups"]) + len(RECEIVER_UIDS) + 1


@pytest.fixture
def env(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("GRAFANA_TOKEN", raising=False)


def run_push(capsys, url, *extra, token=TOKEN):
    rc = wardwatch(["dashboards", "push", "--url", url, "--token", token, *extra])
    out, err = capsys.readouterr()
    assert TOKEN not in out + err
    assert ENV["WARDWATCH_INFLUX_PASSWORD"] not in out + err
    return rc, out, err


def plan_lines(out: str) -> dict[tuple[str, str], str]:
    """{(kind, uid): op} from push's per-object lines."""
    lines = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in ("create", "update", "unchanged"):
            lines[(parts[1], parts[2])] = parts[0]
    return lines


def test_push_stores_everything_then_a_second_push_writes_nothing(env, capsys):
    with FakeGrafana(TOKEN) as g:
        rc, out, err = run_push(capsys, g.url)
        assert rc == 0, err
        assert g.violations == []
        ops = plan_lines(out)
        assert len(ops) == N_OBJECTS, out
        assert {op for (kind, _), op in ops.items() if kind != "policy"} == {"create"}, out
        assert ops[("policy", "root")] == "update"  # a fresh Grafana has its own default tree

        s = g.state
        ds = s.datasources["wardwatch-influx"]
        assert (ds["type"], ds["url"], ds["jsonData"]["dbName"], ds["user"]) == (
            "influxdb", ENV["WARDWATCH_INFLUX_URL"], "wardwatch", "grafana")
        assert ds["jsonData"]["version"] == "InfluxQL"
        assert s.secrets["wardwatch-influx"] == {"password": ENV["WARDWATCH_INFLUX_PASSWORD"]}
        assert "secureJsonData" not in ds and ds["secureJsonFields"] == {"password": True}
        assert s.folders["wardwatch"]["title"] == "WardWatch"
        assert sorted(s.dashboards) == DASHBOARD_UIDS
        assert {d["folderUid"] for d in s.dashboards.values()} == {"wardwatch"}
        for uid in DASHBOARD_UIDS:  # stored as in the committed file, plus Grafana's id/version
            committed = json.loads(next(p for p in (ROOT / "json").glob("*.json")
                                        if json.loads(p.read_text())["uid"] == uid).read_text())
            stored = {k: v for k, v in s.dashboards[uid]["dashboard"].items() if k not in ("id", "version")}
            assert stored == committed
        assert sorted(s.rules) == RULE_UIDS
        assert {(r["folderUID"], r["provenance"]) for r in s.rules.values()} == {("wardwatch", "")}
        assert s.groups == {("wardwatch", g_["name"]): push.duration_seconds(g_["interval"])
                            for g_ in ALERTING["groups"]}
        assert sorted(u for u in s.contact_points if u != "default") == RECEIVER_UIDS
        assert s.contact_points["ww-email"]["settings"]["addresses"] == ENV["WARDWATCH_ALERT_EMAIL"]
        assert s.contact_points["ww-webhook"]["settings"]["url"] == ENV["WARDWATCH_ALERT_WEBHOOK_URL"]
        assert s.policy["receiver"] == ALERTING["policies"][0]["receiver"] == "wardwatch-ward-team"
        assert s.policy["provenance"] == ""
        # Every write carried the bearer token and JSON; alerting writes kept the objects editable.
        writes = g.writes()
        assert all(w.headers.get("Authorization") == f"Bearer {TOKEN}" for w in g.requests)
        assert all(w.headers.get("Content-Type", "").startswith("application/json") for w in writes)
        assert all(w.headers.get("X-Disable-Provenance") == "true" for w in writes if "/v1/provisioning/" in w.path)
        dash_posts = [w.body for w in writes if w.path == "/api/dashboards/db"]
        assert len(dash_posts) == len(DASHBOARD_UIDS)
        assert all(b["overwrite"] is True and b["folderUid"] == "wardwatch" for b in dash_posts)
        n_writes = len(writes)

        rc, out, err = run_push(capsys, g.url)
        assert rc == 0, err
        assert len(g.writes()) == n_writes, [(w.method, w.path) for w in g.writes()[n_writes:]]
        ops = plan_lines(out)
        assert len(ops) == N_OBJECTS and set(ops.values()) == {"unchanged"}, out
        assert f"0 to create, 0 to update, {N_OBJECTS} unchanged" in out
        assert g.violations == []


def test_a_dashboard_changed_in_grafana_is_the_only_thing_updated(env, capsys):
    with FakeGrafana(TOKEN) as g:
        assert run_push(capsys, g.url)[0] == 0
        changed = DASHBOARD_UIDS[0]
        g.state.dashboards[changed]["dashboard"]["title"] = "Edited in the UI"
        g.state.dashboards[changed]["dashboard"]["version"] += 1
        before = len(g.writes())

        rc, out, err = run_push(capsys, g.url)
        assert rc == 0, err
        new = g.writes()[before:]
        assert [(w.method, w.path, w.body["dashboard"]["uid"]) for w in new] == [
            ("POST", "/api/dashboards/db", changed)]
        ops = plan_lines(out)
        assert ops[("dashboard", changed)] == "update"
        assert [k for k, op in ops.items() if op != "unchanged"] == [("dashboard", changed)]
        assert g.state.dashboards[changed]["dashboard"]["title"] != "Edited in the UI"
        assert g.violations == []


def test_dry_run_issues_only_gets_and_prints_the_plan(capsys):
    """As an operator runs it: the installed command in a child process, token from GRAFANA_TOKEN."""
    with FakeGrafana(TOKEN) as g:
        env = {**os.environ, **ENV, "GRAFANA_TOKEN": TOKEN}
        r = subprocess.run([sys.executable, "-m", "gateway.cli", "dashboards", "push", "--url", g.url, "--dry-run"],
                           env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert TOKEN not in r.stdout + r.stderr
        assert g.requests and {q.method for q in g.requests} == {"GET"}
        assert g.state.dashboards == {} and g.state.rules == {} and g.state.datasources == {}
        ops = plan_lines(r.stdout)
        assert len(ops) == N_OBJECTS
        assert {op for (kind, _), op in ops.items() if kind != "policy"} == {"create"}
        assert ops[("policy", "root")] == "update"  # a fresh Grafana has its own default tree
        assert ("dashboard", "ww-ward-overview") in ops and ("alert-rule", "ww-gateway-down") in ops
        assert "dry run:" in r.stdout and "nothing written" in r.stdout
        assert g.violations == []


def test_wrong_token_is_refused_with_a_clear_message(env, capsys):
    with FakeGrafana(TOKEN) as g:
        rc, out, err = run_push(capsys, g.url, token="glsa_wrong-token")
        assert rc == 1
        assert "401" in err and "refused the token" in err
        assert "glsa_wrong-token" not in out + err
        assert g.requests and {q.status for q in g.requests} == {401}
        assert g.writes() == [] and g.violations == []


def test_unresolved_placeholders_are_refused_before_any_request(env, capsys, monkeypatch):
    monkeypatch.delenv("WARDWATCH_INFLUX_URL")
    monkeypatch.delenv("WARDWATCH_ALERT_EMAIL")
    with FakeGrafana(TOKEN) as g:
        rc, out, err = run_push(capsys, g.url)
        assert rc == 1
        assert "WARDWATCH_ALERT_EMAIL, WARDWATCH_INFLUX_URL" in err
        assert g.requests == []
        # The option fills the URL; the e-mail address is still missing.
        rc, out, err = run_push(capsys, g.url, "--influx-url", "http://127.0.0.1:8086")
        assert rc == 1 and "WARDWATCH_ALERT_EMAIL" in err and "WARDWATCH_INFLUX_URL" not in err


def test_token_file_no_policy_and_update_secrets(env, capsys, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with FakeGrafana(TOKEN) as g:
        rc = wardwatch(["dashboards", "push", "--url", g.url, "--token-file", str(token_file), "--no-policy"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert TOKEN not in out + err
        assert not [q for q in g.requests if q.path.endswith("/policies")]
        assert g.state.policy["receiver"] == "grafana-default-email"  # the site's tree untouched
        before = len(g.writes())
        rc, out, err = run_push(capsys, g.url, "--no-policy", "--update-secrets")
        assert rc == 0, err
        assert [(w.method, w.path) for w in g.writes()[before:]] == [("PUT", "/api/datasources/uid/wardwatch-influx")]
        assert g.violations == []


def test_unreachable_grafana_is_one_line_and_exit_1(env, capsys):
    with FakeGrafana(TOKEN) as g:
        url = g.url  # a port that was just free and is closed after the with block
    rc, out, err = run_push(capsys, url, "--dry-run", "--timeout", "2")
    assert rc == 1
    assert err.strip() == f"wardwatch dashboards push: cannot reach {url}: ConnectionError"


def test_the_fake_rejects_what_grafana_documents_as_invalid(env):
    """The checking server can fail: malformed or undocumented calls are violations."""
    import niquests

    with FakeGrafana(TOKEN) as g:
        h = {"Authorization": f"Bearer {TOKEN}"}
        r = niquests.post(g.url + "/api/dashboards/db", json={"dashboard": {"title": "x"}}, headers=h)
        assert r.status_code == 400  # no uid, no folder
        r = niquests.post(g.url + "/api/v1/provisioning/alert-rules",
                          json={"uid": "r1", "title": "t", "condition": "A", "data": []}, headers=h)
        assert r.status_code == 400
        r = niquests.delete(g.url + "/api/folders/wardwatch", headers=h)  # push never deletes
        assert r.status_code == 400
        r = niquests.get(g.url + "/api/folders/wardwatch")  # no Authorization header
        assert r.status_code == 401
        assert len(g.violations) == 4, g.violations


# ---------------------------------------------------------------- pure core, from tables


@pytest.mark.parametrize("obj, values, expected", [
    ("${A}", {"A": "1"}, "1"),
    ({"u": "http://${H}:${P}/x", "n": [1, "${H}"]}, {"H": "h", "P": "80"}, {"u": "http://h:80/x", "n": [1, "h"]}),
    ("{{ index $labels \"ward\" }} $values.B", {}, "{{ index $labels \"ward\" }} $values.B"),  # templates stay
    ("", {}, ""),
])
def test_resolve(obj, values, expected):
    assert push.resolve(obj, values) == expected


def test_resolve_names_every_missing_variable_and_no_value():
    with pytest.raises(push.PushError) as e:
        push.resolve({"a": "${B}", "b": ["${A}", "${C}"]}, {"C": "secret-value"})
    assert "A, B" in str(e.value) and "secret-value" not in str(e.value)


@pytest.mark.parametrize("text, seconds", [("0s", 0), ("30s", 30), ("1m", 60), ("2h", 7200), (90, 90)])
def test_duration_seconds(text, seconds):
    assert push.duration_seconds(text) == seconds


@pytest.mark.parametrize("kind, desired, existing, op", [
    ("folder", {"uid": "w", "title": "T"}, None, "create"),
    ("folder", {"uid": "w", "title": "T"}, {"uid": "w", "title": "T", "id": 3, "version": 2}, "unchanged"),
    ("folder", {"uid": "w", "title": "T"}, {"uid": "w", "title": "Old"}, "update"),
    ("dashboard", {"dashboard": {"uid": "d", "title": "T", "id": None}, "folderUid": "w"},
     {"dashboard": {"uid": "d", "title": "T", "id": 7, "version": 4}, "meta": {"folderUid": "w"}}, "unchanged"),
    ("dashboard", {"dashboard": {"uid": "d", "title": "T", "id": None}, "folderUid": "w"},
     {"dashboard": {"uid": "d", "title": "T", "id": 7, "version": 4}, "meta": {"folderUid": "other"}}, "update"),
    ("dashboard", {"dashboard": {"uid": "d", "title": "T", "id": None}, "folderUid": "w"},
     {"dashboard": {"uid": "d", "title": "T", "extra": 1}, "meta": {"folderUid": "w"}}, "update"),
    ("datasource", {"uid": "x", "url": "u", "secureJsonData": {"password": "p"}},
     {"uid": "x", "url": "u", "id": 1, "secureJsonFields": {"password": True}}, "unchanged"),
    ("datasource", {"uid": "x", "url": "u", "secureJsonData": {"password": "p"}},
     {"uid": "x", "url": "u", "id": 1, "secureJsonFields": {}}, "update"),
    ("alert-rule", {"uid": "r", "for": "0s", "labels": {"a": "b"}},
     {"uid": "r", "for": "0s", "labels": {"a": "b"}, "id": 5, "provenance": ""}, "unchanged"),
    ("alert-rule", {"uid": "r", "isPaused": False}, {"uid": "r", "isPaused": 0}, "update"),
    ("alert-rule", {"uid": "r", "data": [1, 2]}, {"uid": "r", "data": [1]}, "update"),
    ("rule-group", {"interval": 60}, {"interval": 60, "rules": []}, "unchanged"),
    ("rule-group", {"interval": 60}, {"interval": 10, "rules": []}, "update"),
    ("policy", {"receiver": "a", "group_by": ["x"]}, {"receiver": "a", "group_by": ["x"], "provenance": "api"}, "unchanged"),
])
def test_decide(kind, desired, existing, op):
    assert push.decide(kind, desired, existing) == op


def test_build_tree_maps_the_file_format_to_api_bodies():
    ds_yaml = yaml.safe_load(next((ROOT / "provisioning" / "datasources").glob("*.yaml")).read_text())
    dashboards = [json.loads(p.read_text()) for p in sorted((ROOT / "json").glob("*.json"))]
    tree = push.build_tree(ds_yaml, ALERTING, dashboards, "Ward 7", ENV)
    assert tree.folder == {"uid": "wardwatch", "title": "Ward 7"}
    assert "editable" not in tree.datasource and tree.datasource["secureJsonData"]["password"] == ENV[
        "WARDWATCH_INFLUX_PASSWORD"]
    assert {r["ruleGroup"] for r in tree.rules} == {g["name"] for g in ALERTING["groups"]}
    assert all(set(r) >= {"uid", "title", "condition", "data", "folderUID", "ruleGroup", "for", "noDataState",
                          "execErrState", "orgID"} for r in tree.rules)
    assert [c["uid"] for c in tree.contact_points] == RECEIVER_UIDS
    assert "orgId" not in tree.policy and tree.policy["receiver"] == "wardwatch-ward-team"


@pytest.mark.parametrize("url, shown", [
    ("https://grafana.example:3000/sub", "https://grafana.example:3000/sub"),
    ("https://admin:s3cret@grafana.example/", "https://grafana.example/"),
])
def test_printed_url_has_no_userinfo(url, shown):
    assert push._without_userinfo(url) == shown
