"""TLS to the broker: the simulator (and so the app) verifies the broker against a CA file;
a wrong CA is a failed connect that is retried, not a crash."""

from __future__ import annotations

import argparse
import json
import subprocess

import pytest

from bedside.app import App
from wardsim import sim
from provisioning.stack.services import Mosquitto, TESTER_USER, free_port

from .conftest import Subscriber, wait


def argparse_args(*argv):
    p = argparse.ArgumentParser()
    sim.add_arguments(p)
    return p.parse_args(list(argv))


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_server_cert(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=wardwatch-test-ca", cwd=d)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=d)


class TLSMosquitto(Mosquitto):
    """The stack's Mosquitto (auth, ACL) plus a TLS listener on ``tls_port``."""

    def __init__(self, workdir, certs, users):
        super().__init__(workdir, users)
        self.tls_port = free_port()
        self.certs = certs

    def _write_config(self):
        super()._write_config()
        c = self.certs
        with open(self.conf, "a") as f:
            f.write(f"listener {self.tls_port} 127.0.0.1\ncafile {c / 'ca.crt'}\n"
                    f"certfile {c / 'server.crt'}\nkeyfile {c / 'server.key'}\n")


@pytest.fixture
def tls_broker(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_ca_and_server_cert(certs)
    m = TLSMosquitto(tmp_path / "mosquitto", certs, {"sim-w1-01": "pw1", "sim-w1-02": "pw2"}).start()
    try:
        yield m
    finally:
        m.stop()


def test_sim_over_tls_verifies_the_broker_with_cafile(tls_broker, tmp_path):
    (tmp_path / "creds").write_text("sim-w1-01:pw1\nsim-w1-02:pw2\n")
    with Subscriber(tls_broker.port, tls_broker.users[TESTER_USER], "wardwatch/v1/w1/+/vitals") as sub:
        args = argparse_args("--ward", "w1", "--beds", "2", "--rate", "10", "--broker", f"127.0.0.1:{tls_broker.tls_port}",
                             "--credentials", str(tmp_path / "creds"), "--cafile", str(tls_broker.certs / "ca.crt"),
                             "--duration", "1", "--summary", str(tmp_path / "s.json"))
        assert sim.run(args) == 0
        summary = json.loads((tmp_path / "s.json").read_text())
        total = sum(s["acked"] for s in summary.values())
        assert total >= 16 and all(s["outbox"] == 0 for s in summary.values())
        wait(lambda: len(sub.seqs()) >= total, 10, "readings sent over TLS")


def test_an_unknown_ca_fails_the_handshake_and_is_retried(tls_broker, tmp_path, aloop):
    other = tmp_path / "other"
    other.mkdir()
    make_ca_and_server_cert(other)
    cfg = {"dev": "sim-w1-01", "ward": "w1", "rate_hz": 10, "sim": True,
           "broker": {"host": "127.0.0.1", "port": tls_broker.tls_port, "password": "pw1", "tls": True,
                      "cafile": str(other / "ca.crt"), "backoff_min_ms": 50, "backoff_max_ms": 200}}
    app = App(cfg)
    fut = aloop.spawn(app.run())
    wait(lambda: app.client is not None and app.client.failures >= 3, 10, "three failed handshakes")
    assert "CERTIFICATE_VERIFY_FAILED" in app.client.last_error and not app.connected()
    assert app.outbox_len > 0  # still sampling into the outbox
    aloop.run(app.stop(0.1))
    fut.result(10)
