"""Grafana for ``make demo``, when a Grafana server binary is on the PATH.

Who calls it: ``provisioning.stack.demo``. Grafana runs from the binary Grafana's own Debian
repository installs (apt.grafana.com), on a free loopback port, with every path it writes
(data, logs, plugins) and a copy of ``dashboards/provisioning`` under the demo's directory, so
it shares nothing with a system Grafana. It serves the dashboards from ``dashboards/json`` and
reads the demo's InfluxDB. Anonymous users get Viewer: this is for the demo only, and the server
listens on 127.0.0.1 only. The admin password is random and never printed.

Pure parts (``find_binary``, ``homepath_for``, ``command``, ``environment``, ``overview_url``)
are tested from tables in tests/dashboards/test_demo_grafana.py, since no Grafana binary exists
on the development machine; ``Grafana`` is the process shell.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Callable, Mapping

from .services import _Process, free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
# Debian/RPM packages: `grafana` (Grafana 10+, `grafana server`) and the older `grafana-server`.
BINARIES = ("grafana", "grafana-server")
PACKAGE_HOMEPATH = "/usr/share/grafana"
NOT_FOUND = ("Grafana         not on the PATH: install it from Grafana's Debian repository "
             "(apt.grafana.com, package 'grafana') to see the dashboards here too")
OVERVIEW_UID = "ww-ward-overview"
# The alerting tree names an e-mail address and a webhook; the demo sends to neither (no SMTP is
# configured, and nothing listens on the discard port).
DEMO_ALERT_EMAIL = "ward-team@example.invalid"
DEMO_ALERT_WEBHOOK = "http://127.0.0.1:9/wardwatch-demo"


def find_binary(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """The first Grafana server binary on the PATH, or None."""
    for name in BINARIES:
        path = which(name)
        if path:
            return path
    return None


def homepath_for(binary_realpath: str, exists: Callable[[str], bool] = os.path.exists) -> str:
    """Grafana's home (``conf/defaults.ini``, ``public/``): ``<home>/bin/grafana`` for a tarball
    or the package's real binary; else the package's ``/usr/share/grafana`` (``/usr/sbin``
    holds only a wrapper there)."""
    home = str(Path(binary_realpath).parent.parent)
    if exists(os.path.join(home, "conf", "defaults.ini")):
        return home
    return PACKAGE_HOMEPATH


def command(binary: str, homepath: str) -> list[str]:
    """The command line: ``grafana server`` for Grafana 10+, else the older ``grafana-server``.
    Everything else is set through the environment (``environment``)."""
    if Path(binary).name == "grafana":
        return [binary, "server", "--homepath", homepath]
    return [binary, "--homepath", homepath]


def environment(*, port: int, workdir: Path, influx_url: str, database: str,
                dashboards_json: Path, admin_password: str, base: Mapping[str, str]) -> dict[str, str]:
    """Grafana's environment for the demo: ``GF_*`` settings override grafana.ini, and the
    ``WARDWATCH_*`` values fill the provisioning files' ``${VAR}`` placeholders."""
    workdir = Path(workdir)
    return {
        **base,
        "GF_SERVER_HTTP_ADDR": "127.0.0.1",
        "GF_SERVER_HTTP_PORT": str(port),
        "GF_SERVER_ROOT_URL": f"http://127.0.0.1:{port}/",
        "GF_PATHS_DATA": str(workdir / "data"),
        "GF_PATHS_LOGS": str(workdir / "logs"),
        "GF_PATHS_PLUGINS": str(workdir / "plugins"),
        "GF_PATHS_PROVISIONING": str(workdir / "provisioning"),
        # Demo only, loopback only: look without logging in, change nothing.
        "GF_AUTH_ANONYMOUS_ENABLED": "true",
        "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
        "GF_SECURITY_ADMIN_PASSWORD": admin_password,
        "GF_USERS_ALLOW_SIGN_UP": "false",
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
        "GF_NEWS_NEWS_FEED_ENABLED": "false",
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH": str(Path(dashboards_json) / "ward-overview.json"),
        "WARDWATCH_INFLUX_URL": influx_url,
        "WARDWATCH_INFLUX_DATABASE": database,
        "WARDWATCH_INFLUX_USER": "",
        "WARDWATCH_INFLUX_PASSWORD": "",
        "WARDWATCH_GRAFANA_DASHBOARDS": str(dashboards_json),
        "WARDWATCH_ALERT_EMAIL": DEMO_ALERT_EMAIL,
        "WARDWATCH_ALERT_WEBHOOK_URL": DEMO_ALERT_WEBHOOK,
    }


def overview_url(port: int, ward: str) -> str:
    """The ward overview dashboard, its ward variable set."""
    return f"http://127.0.0.1:{port}/d/{OVERVIEW_UID}/?var-ward={ward}"


class Grafana(_Process):
    """One Grafana server we start and stop. ``start()`` returns once ``/api/health`` answers."""

    name = "grafana"

    def __init__(self, workdir: Path, binary: str, influx_url: str, database: str, port: int | None = None,
                 tree: Path = DASHBOARDS):
        super().__init__(workdir)
        self.binary = binary
        self.port = port or free_port()
        self.tree = Path(tree)
        self.env = environment(port=self.port, workdir=self.workdir, influx_url=influx_url, database=database,
                               dashboards_json=self.tree / "json", admin_password=secrets.token_urlsafe(18),
                               base=os.environ)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def start(self, timeout: float = 60) -> "Grafana":
        for sub in ("data", "logs", "plugins"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        # A copy, so that nothing Grafana or a user does touches the committed tree.
        shutil.rmtree(self.workdir / "provisioning", ignore_errors=True)
        shutil.copytree(self.tree / "provisioning", self.workdir / "provisioning")
        argv = command(self.binary, homepath_for(os.path.realpath(self.binary)))
        with open(self.log, "ab") as log:
            # A new session: Ctrl-C reaches the demo, which stops Grafana itself.
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                         cwd=self.workdir, start_new_session=True)
        wait_until(lambda: self._check_alive() or self._healthy(), timeout, "grafana /api/health")
        return self
