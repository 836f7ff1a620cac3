"""`wardwatch doctor` against the real stack: healthy, then one fault at a time."""

from __future__ import annotations

import subprocess
import sys
import time
from argparse import Namespace

import pytest

from gateway.cli import doctor
from provisioning.stack.gateway_proc import GatewayProcess, write_registry
from provisioning.stack.services import wait_until

from .publisher import Publisher, reading

pytestmark = pytest.mark.services

WARD = "w1"
BEDS = 2
DEVICES = [f"sim-{WARD}-{n:02d}" for n in range(1, BEDS + 1)]


def publish_now(pub: Publisher, devices: list[str], count: int = 5, start_seq: int = 0) -> None:
    now_ms = int(time.time() * 1000)
    for dev in devices:
        for i in range(count):
            pub.publish(f"wardwatch/v1/{WARD}/{dev}/vitals", reading(dev, start_seq + i, ts=now_ms - count + i))


def stored(stack, dev: str) -> int:
    return len(stack.influx.rows(f"SELECT seq FROM vitals WHERE device='{dev}'"))


@pytest.fixture
def gateway(stack, tmp_path):
    registry = write_registry(tmp_path / "registry.toml", WARD, BEDS)
    with GatewayProcess(stack, tmp_path / "gw", registry=registry) as gw:
        pub = Publisher(stack)
        publish_now(pub, DEVICES)
        for dev in DEVICES:
            wait_until(lambda d=dev: stored(stack, d) >= 5, 30, f"readings of {dev} in InfluxDB")
        gw.publisher = pub
        yield gw
        pub.close()


def influxql_url(stack) -> str:
    return f"http://127.0.0.1:{stack.influx.http_port}"


def run_inprocess(stack, gw, capsys) -> tuple[int, dict[str, str]]:
    code = doctor.run(Namespace(config=str(gw.config), influxql=influxql_url(stack), database=None))
    return code, levels(capsys.readouterr().out)


def run_child(stack, gw, config=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "doctor", "--config", str(config or gw.config),
         "--influxql", influxql_url(stack)],
        capture_output=True, text=True, timeout=120,
    )


def levels(out: str) -> dict[str, str]:
    """{check: 'OK'|'WARN'|'FAIL'} from doctor's output lines."""
    out_levels = {}
    for line in out.splitlines():
        level, _, rest = line.partition(" ")
        out_levels[rest.strip().split(":")[0]] = level
    return out_levels


CHECKS = ["mqtt", "tls", "influx", "healthz", "clock", "spool", "devices"]


def test_healthy_deployment_every_check_ok(stack, gateway):
    proc = run_child(stack, gateway)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert levels(proc.stdout) == {c: "OK" for c in CHECKS}, proc.stdout
    password = stack.password("wardwatch-gateway")
    assert password not in proc.stdout and password not in proc.stderr
    # The doctor point is in the database.
    assert stack.influx.rows("SELECT marker FROM doctor")


def test_wrong_mqtt_password_fails_mqtt(stack, gateway, tmp_path):
    secret = tmp_path / "wrong.password"
    secret.write_text("not-the-password\n")
    config = tmp_path / "wrong.toml"
    config.write_text(gateway.config.read_text().replace(str(gateway.workdir / "mqtt.password"), str(secret)))
    proc = run_child(stack, gateway, config)
    print(proc.stdout)
    assert proc.returncode == 1
    assert levels(proc.stdout)["mqtt"] == "FAIL"
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FAIL mqtt"))
    assert "connection refused: not authorised" in line or "connection refused: not authorized" in line
    assert "-> check mqtt.username and the password file" in line
    assert "not-the-password" not in proc.stdout


def test_broker_stopped_fails_mqtt(stack, gateway, capsys):
    stack.mosquitto.stop()
    wait_until(lambda: gateway.health().get("status") == "down", 30, "gateway to report down")
    code, got = run_inprocess(stack, gateway, capsys)
    assert code == 1
    assert got["mqtt"] == "FAIL" and got["healthz"] == "FAIL"


def test_influx_stopped_fails_influx_and_healthz_degraded_warns(stack, gateway, capsys):
    stack.influx.stop()
    wait_until(lambda: gateway.health().get("status") == "degraded", 30, "gateway to report degraded")
    code, got = run_inprocess(stack, gateway, capsys)
    assert code == 1
    assert got["influx"] == "FAIL"
    assert got["healthz"] == "WARN"


def test_gateway_stopped_fails_healthz(stack, gateway, capsys):
    gateway.stop()
    code, got = run_inprocess(stack, gateway, capsys)
    assert code == 1
    assert got["healthz"] == "FAIL"
    assert got["mqtt"] == "OK" and got["influx"] == "OK"


def test_registered_device_that_never_published_warns(stack, gateway, tmp_path, capsys):
    with open(gateway.registry, "a") as f:
        f.write(f'[devices.never-01]\nward = "{WARD}"\nbed = "09"\n\n')
    code = doctor.run(Namespace(config=str(gateway.config), influxql=influxql_url(stack), database=None))
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(x for x in out.splitlines() if "devices:" in x)
    assert line.startswith("WARN") and "never-01" in line and "sim-w1-01" not in line


def test_spool_non_empty_warns(stack, gateway, capsys):
    stack.influx.stop()
    wait_until(lambda: gateway.health().get("status") == "degraded", 30, "gateway to report degraded")
    publish_now(gateway.publisher, DEVICES, count=20, start_seq=100)
    wait_until(lambda: gateway.health().get("spool_batches", 0) > 0, 30, "the gateway to spool")
    code, got = run_inprocess(stack, gateway, capsys)
    assert got["spool"] == "WARN"
    assert code == 1  # InfluxDB is down: the influx check fails


class _TLSServer:
    """A loopback TLS listener presenting ``files.server_cert`` (the handshake is all tls checks)."""

    def __init__(self, files):
        import socket
        import ssl
        import threading

        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(files.server_cert, files.server_key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import ssl

        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.stopped = True
        self.sock.close()


def test_live_tls_certificate_verifies_and_reports_days_left(tmp_path):
    from gateway import config
    from provisioning.tls import SERVER_DAYS, make_test_ca

    files = make_test_ca(tmp_path / "tls", ["127.0.0.1", "localhost"])
    other = make_test_ca(tmp_path / "other", ["127.0.0.1"])
    server = _TLSServer(files)
    try:
        def cfg_with(cafile):
            path = tmp_path / "tls.toml"
            path.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {server.port}\ntls = true\ncafile = "{cafile}"\n')
            return config.load(path, env={})

        good = doctor.check_tls(cfg_with(files.ca_cert))
        assert good.level == "OK", good
        assert f"{SERVER_DAYS - 1} days left" in good.message or f"{SERVER_DAYS} days left" in good.message
        bad = doctor.check_tls(cfg_with(other.ca_cert))
        assert bad.level == "FAIL" and "does not verify" in bad.message, bad
        assert "mqtt.cafile" in bad.fix
    finally:
        server.close()
