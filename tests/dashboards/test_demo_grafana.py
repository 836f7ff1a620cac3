"""Grafana in ``make demo`` (provisioning/stack/grafana.py).

No Grafana binary exists on the development machine (no Debian, PyPI or npm package ships the
server), so the command line and environment Grafana would be started with are tested as pure
functions, and the demo itself is run twice on the real stack: once with no Grafana on the PATH
(it prints the one line on how to get Grafana), and once with a stand-in executable named
``grafana`` that records how it was started and answers ``/api/health``. The stand-in is not
Grafana: it proves the demo's process handling (argv, environment, the provisioning copy, the
printed URL, and that it is stopped with everything else).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from dashboards import push
from provisioning.stack import grafana
from provisioning.stack.services import wait_until
from tests.dashboards.collect import PROVISIONING, ROOT, REPO_ROOT


@pytest.mark.parametrize("on_path, expected", [
    ({"grafana": "/usr/sbin/grafana", "grafana-server": "/usr/sbin/grafana-server"}, "/usr/sbin/grafana"),
    ({"grafana-server": "/usr/sbin/grafana-server"}, "/usr/sbin/grafana-server"),
    ({}, None),
])
def test_find_binary(on_path, expected):
    assert grafana.find_binary(on_path.get) == expected


@pytest.mark.parametrize("real, existing, home", [
    ("/usr/share/grafana/bin/grafana", {"/usr/share/grafana/conf/defaults.ini"}, "/usr/share/grafana"),
    ("/opt/grafana-12.1/bin/grafana", {"/opt/grafana-12.1/conf/defaults.ini"}, "/opt/grafana-12.1"),
    ("/usr/sbin/grafana-server", set(), "/usr/share/grafana"),  # the package's wrapper
])
def test_homepath_for(real, existing, home):
    assert grafana.homepath_for(real, existing.__contains__) == home


@pytest.mark.parametrize("binary, argv", [
    ("/usr/sbin/grafana", ["/usr/sbin/grafana", "server", "--homepath", "/h"]),
    ("/usr/sbin/grafana-server", ["/usr/sbin/grafana-server", "--homepath", "/h"]),
])
def test_command(binary, argv):
    assert grafana.command(binary, "/h") == argv


def test_environment_is_loopback_throwaway_and_fills_every_placeholder(tmp_path):
    env = grafana.environment(port=3123, workdir=tmp_path, influx_url="http://127.0.0.1:8099", database="wardwatch",
                              dashboards_json=ROOT / "json", admin_password="pw", base={"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert (env["GF_SERVER_HTTP_ADDR"], env["GF_SERVER_HTTP_PORT"]) == ("127.0.0.1", "3123")
    for key in ("GF_PATHS_DATA", "GF_PATHS_LOGS", "GF_PATHS_PLUGINS", "GF_PATHS_PROVISIONING"):
        assert Path(env[key]).parent == tmp_path, key
    assert (env["GF_AUTH_ANONYMOUS_ENABLED"], env["GF_AUTH_ANONYMOUS_ORG_ROLE"]) == ("true", "Viewer")
    assert (env["WARDWATCH_INFLUX_URL"], env["WARDWATCH_INFLUX_DATABASE"]) == ("http://127.0.0.1:8099", "wardwatch")
    assert env["WARDWATCH_GRAFANA_DASHBOARDS"] == str(ROOT / "json")
    # Grafana would start with no ${VAR} of the provisioning tree left empty-handed.
    wanted = set()
    for f in PROVISIONING.rglob("*.yaml"):
        wanted |= push.placeholders(yaml.safe_load(f.read_text()))
    assert wanted and wanted <= set(env), wanted - set(env)


def test_overview_url():
    assert grafana.overview_url(3123, "w2") == "http://127.0.0.1:3123/d/ww-ward-overview/?var-ward=w2"


STANDIN = textwrap.dedent("""\
    #!{python}
    # A stand-in for the Grafana binary (not Grafana): records how it was started, answers
    # /api/health like Grafana, and notes when it is told to stop.
    import json, os, signal, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    record = os.environ["STANDIN_RECORD"]
    env = {{k: v for k, v in os.environ.items() if k.startswith(("GF_", "WARDWATCH_"))}}
    env["GF_SECURITY_ADMIN_PASSWORD"] = bool(env.get("GF_SECURITY_ADMIN_PASSWORD"))
    prov = os.environ["GF_PATHS_PROVISIONING"]
    files = sorted(os.path.relpath(os.path.join(d, f), prov) for d, _, fs in os.walk(prov) for f in fs)
    json.dump({{"argv": sys.argv, "env": env, "cwd": os.getcwd(), "provisioning": files}}, open(record, "w"))

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{{"database": "ok"}}' if self.path == "/api/health" else b""
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass

    def stop(*_):
        open(record + ".stopped", "w").close()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    HTTPServer((os.environ["GF_SERVER_HTTP_ADDR"], int(os.environ["GF_SERVER_HTTP_PORT"])), H).serve_forever()
    """)


def _path_without_grafana() -> str:
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if not any(os.path.exists(os.path.join(d, b)) for b in grafana.BINARIES))


def _demo(tmp_path: Path, path: str, **extra_env) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path, "COLUMNS": "400", **extra_env}
    return subprocess.run([sys.executable, "-m", "provisioning.stack.demo", "--beds", "2", "--duration", "1",
                           "--dir", str(tmp_path / "demo")], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def test_demo_without_grafana_prints_how_to_get_it(tmp_path):
    r = _demo(tmp_path, _path_without_grafana())
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line.strip() for line in r.stdout.splitlines() if "Grafana" in line]
    assert lines == [grafana.NOT_FOUND], lines
    assert "apt.grafana.com" in lines[0]
    assert not (tmp_path / "demo" / "grafana").exists()
    assert "WardWatch ward w1: secondary display" in r.stdout  # the terminal view, as before


def test_demo_starts_the_grafana_binary_on_the_path_and_stops_it(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    standin = bin_dir / "grafana"
    standin.write_text(STANDIN.format(python=sys.executable))
    standin.chmod(0o755)
    record = tmp_path / "standin.json"
    r = _demo(tmp_path, str(bin_dir) + os.pathsep + _path_without_grafana(), STANDIN_RECORD=str(record))
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(record.read_text())
    port = int(rec["env"]["GF_SERVER_HTTP_PORT"])
    workdir = tmp_path / "demo" / "grafana"
    assert rec["argv"][1:] == ["server", "--homepath", grafana.PACKAGE_HOMEPATH]
    assert rec["env"]["GF_SERVER_HTTP_ADDR"] == "127.0.0.1"
    assert rec["env"]["GF_PATHS_PROVISIONING"] == str(workdir / "provisioning")
    assert rec["env"]["GF_PATHS_DATA"] == str(workdir / "data")
    assert rec["env"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert rec["env"]["GF_SECURITY_ADMIN_PASSWORD"] is True
    assert rec["env"]["WARDWATCH_INFLUX_URL"].startswith("http://127.0.0.1:")
    assert rec["env"]["WARDWATCH_GRAFANA_DASHBOARDS"] == str(ROOT / "json")
    committed = sorted(p.relative_to(PROVISIONING).as_posix() for p in PROVISIONING.rglob("*") if p.is_file())
    assert rec["provisioning"] == committed
    assert grafana.overview_url(port, "w1") in r.stdout
    assert grafana.NOT_FOUND not in r.stdout
    # Stopped with everything else: it got SIGTERM and its port is closed.
    wait_until(lambda: (record.parent / (record.name + ".stopped")).exists(), 10, "the stand-in to be stopped")
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert "Stopping Grafana, the simulator" in r.stdout


def test_a_grafana_that_fails_to_start_is_reported_and_the_demo_goes_on(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    broken = bin_dir / "grafana-server"
    broken.write_text("#!/bin/sh\necho 'stand-in: failed to start' >&2\nexit 1\n")
    broken.chmod(0o755)
    r = _demo(tmp_path, str(bin_dir) + os.pathsep + _path_without_grafana())
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(line for line in r.stdout.splitlines() if "Grafana" in line and "did not start" in line)
    assert str(tmp_path / "demo" / "grafana" / "grafana.log") in line
    assert "failed to start" in (tmp_path / "demo" / "grafana" / "grafana.log").read_text()
    assert "WardWatch ward w1: secondary display" in r.stdout  # the terminal view still ran
    assert "Stopping the simulator" in r.stdout
