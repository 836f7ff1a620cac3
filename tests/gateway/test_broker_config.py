"""provisioning.broker and provisioning.tls without a broker: the rendered config and ACL from
tables, the committed examples, credentials handling, secrets never printed, the test CA."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography import x509

from provisioning import broker, cli
from provisioning.broker import BrokerSettings, Listener, Operator
from provisioning.tls import make_test_ca

REPO = Path(__file__).resolve().parents[2]


def test_committed_examples_are_the_generators_output():
    assert (REPO / "provisioning/mosquitto/wardwatch.conf").read_text() == broker.render_conf(broker.EXAMPLE_SETTINGS)
    assert (REPO / "provisioning/mosquitto/acl").read_text() == broker.render_acl(broker.EXAMPLE_OPERATORS)


def _block(acl: str, user: str) -> list[str]:
    lines = acl.splitlines()
    i = lines.index(f"user {user}")
    block = []
    for line in lines[i + 1:]:
        if line.startswith("# "):
            continue
        if not line.startswith("topic "):
            break
        block.append(line)
    return block


@pytest.mark.parametrize("op, expected", [
    (Operator("ward-station"), [
        "topic write wardwatch/v1/+/cmd/ward-station", "topic read wardwatch/v1/+/cmd/ward-station/reply",
        "topic read wardwatch/v1/+/alarms/#", "topic read wardwatch/v1/+/news2/#"]),
    (Operator("ward-station-w1", "w1"), [
        "topic write wardwatch/v1/w1/cmd/ward-station-w1", "topic read wardwatch/v1/w1/cmd/ward-station-w1/reply",
        "topic read wardwatch/v1/w1/alarms/#", "topic read wardwatch/v1/w1/news2/#"]),
    (Operator("display-w2", "w2", "display"), [
        "topic read wardwatch/v1/w2/alarms/#", "topic read wardwatch/v1/w2/news2/#"]),
])
def test_operator_blocks(op, expected):
    assert _block(broker.render_acl([op]), op.name) == expected


def test_devices_and_gateway_in_the_acl():
    acl = broker.render_acl([])
    patterns = [line for line in acl.splitlines() if line.startswith("pattern ")]
    assert patterns == [
        "pattern write wardwatch/v1/+/%u/vitals", "pattern readwrite wardwatch/v1/+/%u/status",
        "pattern read wardwatch/v1/+/%u/config", "pattern read wardwatch/v1/+/%u/durable",
    ]
    assert _block(acl, "wardwatch-gateway") == [
        "topic read wardwatch/v1/#", "topic write wardwatch/v1/+/alarms/#", "topic write wardwatch/v1/+/news2/#",
        "topic write wardwatch/v1/+/cmd/+/reply", "topic write wardwatch/v1/+/+/durable",
        "topic read $SYS/broker/store/messages/count",
    ]
    assert broker.BROKER_STORED_TOPIC == "$SYS/broker/store/messages/count"  # gateway/service.py reads it
    assert "user gw-2" in broker.render_acl([], "gw-2")
    assert broker.render_acl([], extra="user t\ntopic readwrite wardwatch/#").endswith("\nuser t\ntopic readwrite wardwatch/#\n")


@pytest.mark.parametrize("spec, role, expected", [
    ("ward-station-w1:w1", "station", Operator("ward-station-w1", "w1", "station")),
    ("central", "station", Operator("central", "+", "station")),
    ("display-w3:w3", "display", Operator("display-w3", "w3", "display")),
])
def test_parse_operator(spec, role, expected):
    assert broker.parse_operator(spec, role) == expected


@pytest.mark.parametrize("spec", ["ab", "Station", "st/1", "st+", "alarms", "cmd", "news2", "st-1:W1", "st-1:w/1", "st-1:#"])
def test_parse_operator_refuses(spec):
    with pytest.raises(ValueError):
        broker.parse_operator(spec)


CONF_TABLE = [
    # (settings, lines that must be there, lines that must not)
    (BrokerSettings(), ["allow_anonymous false", "listener 8883", "listener 1883 127.0.0.1",
                        "certfile /etc/mosquitto/certs/server.crt", "tls_version tlsv1.2",
                        "autosave_on_changes true", "autosave_interval 1000", "max_queued_messages 200000",
                        "max_inflight_messages 1000", "persistent_client_expiration 7d", "persistence true"],
     ["user root", "sys_interval 2", "log_dest stderr"]),
    (BrokerSettings(listeners=(Listener(1884, "127.0.0.1"),), run_as="root", sys_interval=2, log_dest="stderr",
                    log_types=("error",), autosave=("autosave_interval 3600",), max_queued_messages=1000000),
     ["user root", "listener 1884 127.0.0.1", "sys_interval 2", "log_dest stderr", "log_type error",
      "autosave_interval 3600", "max_queued_messages 1000000", "allow_anonymous false"],
     ["certfile /etc/mosquitto/certs/server.crt", "autosave_on_changes true", "listener 8883"]),
    (BrokerSettings(listeners=(Listener(8884, "10.0.0.5", tls=True),), certfile="/c/s.crt", keyfile="/c/s.key",
                    cafile="/c/ca.crt"),
     ["listener 8884 10.0.0.5", "certfile /c/s.crt", "keyfile /c/s.key", "cafile /c/ca.crt"], ["listener 1883 127.0.0.1"]),
]


@pytest.mark.parametrize("settings, present, absent", CONF_TABLE)
def test_render_conf(settings, present, absent):
    lines = broker.render_conf(settings).splitlines()
    for line in present:
        assert line in lines
    for line in absent:
        assert line not in lines


def test_measured_autosave_reasoning_goes_with_the_deployment_setting():
    assert "make bench-broker" in broker.render_conf(BrokerSettings())
    assert "make bench-broker" not in broker.render_conf(BrokerSettings(autosave=("autosave_interval 3600",)))


def test_credentials_must_be_private_and_well_formed(tmp_path):
    creds = tmp_path / "creds"
    creds.write_text("# devices\n\ndev-aa1:pw-a\ndev-bb2:p:w\n")
    os.chmod(creds, 0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        broker.read_credentials(creds)
    os.chmod(creds, 0o600)
    assert broker.read_credentials(creds) == {"dev-aa1": "pw-a", "dev-bb2": "p:w"}
    creds.write_text("dev-aa1 secret-no-colon\n")
    with pytest.raises(ValueError) as err:
        broker.read_credentials(creds)
    assert "secret" not in str(err.value)


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    broker.add_arguments(p)
    return p.parse_args(list(argv))


def test_run_writes_a_deployment_and_prints_no_password(tmp_path, capsys):
    creds = tmp_path / "creds"
    creds.write_text("dev-aa1:device-secret-a\nward-station-w1:station-secret\n")
    os.chmod(creds, 0o600)
    out = tmp_path / "out"
    rc = broker.run(_args("--out", str(out), "--credentials", str(creds), "--generate-passwords",
                          "--operator", "ward-station-w1:w1", "--display", "display-w1:w1",
                          "--install-dir", "/etc/mosquitto", "--plain-port", "0"))
    assert rc == 0
    printed = "".join(capsys.readouterr())
    generated = {n: (out / "secrets" / f"{n}.password").read_text().strip() for n in ("wardwatch-gateway", "display-w1")}
    assert not (out / "secrets" / "ward-station-w1.password").exists()  # it had one in --credentials
    for secret in ["device-secret-a", "station-secret", *generated.values()]:
        assert secret not in printed
        assert secret not in (out / "wardwatch.passwd").read_text()  # hashed
    for path in [out / "wardwatch.passwd", *(out / "secrets").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    users = [line.split(":")[0] for line in (out / "wardwatch.passwd").read_text().splitlines()]
    assert sorted(users) == ["dev-aa1", "display-w1", "ward-station-w1", "wardwatch-gateway"]
    assert all(re.match(r"^[^:]+:\$7\$", line) for line in (out / "wardwatch.passwd").read_text().splitlines())
    acl = (out / "wardwatch.acl").read_text()
    assert "topic write wardwatch/v1/w1/cmd/ward-station-w1" in acl
    conf = (out / "mosquitto.conf").read_text().splitlines()
    assert "password_file /etc/mosquitto/wardwatch.passwd" in conf and "listener 8883" in conf
    assert not any(line.startswith("listener 1883") for line in conf)


def test_run_refuses_accounts_without_password(tmp_path, capsys):
    assert broker.run(_args("--out", str(tmp_path / "out"), "--operator", "ward-station-w1:w1")) == 2
    assert "wardwatch-gateway" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert broker.run(_args("--out", str(tmp_path / "out"), "--generate-passwords", "--make-test-ca")) == 2


def test_provision_cli_has_the_broker_target():
    assert ("broker", "provisioning.broker") in cli.TARGETS
    p = argparse.ArgumentParser()
    cli.add_subcommands(p)
    args = p.parse_args(["broker", "--out", "x", "--operator", "ward-station-w1:w1"])
    assert args.func is broker.run and args.operator == ["ward-station-w1:w1"]


def test_test_ca_and_server_certificate(tmp_path):
    files = make_test_ca(tmp_path / "certs", ["localhost", "127.0.0.1", "ward-broker.example"])
    for key in (files.ca_key, files.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "ward-broker.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert server.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=300)
    with pytest.raises(ValueError):
        make_test_ca(tmp_path / "none", [])
