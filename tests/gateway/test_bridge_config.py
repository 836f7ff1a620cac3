"""provisioning.broker's bridge, without a broker: the site's bridge file and the central
broker's bridge account from tables, and `wardwatch provision broker --bridge-to/--bridge-account`
writing them (password only in the 0600 bridge file, never printed). The bridge running on two
real Mosquittos: tests/integration/test_bridge.py."""

from __future__ import annotations

import argparse
import os
import stat

import pytest

from provisioning import broker
from provisioning.broker import Bridge, BridgeAccount

SITE = Bridge("site-a", "central.example:8883", ("w1", "w2"), "bridge-site-a", "pw-s3cret")


def lines(text: str) -> set[str]:
    return set(text.splitlines())


@pytest.mark.parametrize("line", [
    "connection site-a", "address central.example:8883", "cleansession false", "local_cleansession false",
    "remote_clientid bridge-site-a", "local_clientid bridge-site-a-local", "remote_username bridge-site-a",
    "remote_password pw-s3cret", "bridge_protocol_version mqttv311", "restart_timeout 1 10",
    "notifications_local_only true",
    # Up: what devices and stations publish at the site. Down: what the gateways send back.
    "topic wardwatch/v1/w1/+/vitals out 1", "topic wardwatch/v1/w1/+/status out 1", "topic wardwatch/v1/w1/cmd/+ out 1",
    "topic wardwatch/v1/w1/+/durable in 1", "topic wardwatch/v1/w1/+/config in 1",
    "topic wardwatch/v1/w1/alarms/# in 1", "topic wardwatch/v1/w1/news2/# in 1",
    "topic wardwatch/v1/w1/cmd/+/reply in 1", "topic wardwatch/v1/w2/+/vitals out 1",
])
def test_bridge_file(line):
    assert line in lines(broker.render_bridge(SITE))


def test_no_topic_crosses_both_ways_and_tls_only_with_a_ca():
    text = broker.render_bridge(SITE)
    assert not any(line.startswith("topic") and " both " in line for line in text.splitlines())
    assert "bridge_cafile" not in text
    tls = broker.render_bridge(Bridge(**{**SITE.__dict__, "cafile": "/etc/mosquitto/certs/central-ca.crt"}))
    assert {"bridge_cafile /etc/mosquitto/certs/central-ca.crt", "bridge_insecure false"} <= lines(tls)


@pytest.mark.parametrize(("change", "message"), [
    ({"wards": ()}, "at least one ward"),
    ({"wards": ("+",)}, "invalid ward"),
    ({"wards": ("w1", "w1")}, "twice"),
    ({"address": "central.example"}, "HOST:PORT"),
    ({"password": ""}, "password"),
    ({"username": "Bridge"}, "invalid account"),
])
def test_bridge_refuses(change, message):
    with pytest.raises(ValueError, match=message):
        broker.render_bridge(Bridge(**{**SITE.__dict__, **change}))


def test_central_acl_grants_the_bridge_its_wards_and_directions_only():
    acl = broker.render_acl((), bridges=[BridgeAccount("bridge-site-a", ("w1",))])
    block = acl[acl.index("user bridge-site-a"):].splitlines()
    assert block[1:] == [
        "topic write wardwatch/v1/w1/+/vitals", "topic write wardwatch/v1/w1/+/status",
        "topic write wardwatch/v1/w1/cmd/+", "topic read wardwatch/v1/w1/+/durable",
        "topic read wardwatch/v1/w1/+/config", "topic read wardwatch/v1/w1/alarms/#",
        "topic read wardwatch/v1/w1/news2/#", "topic read wardwatch/v1/w1/cmd/+/reply",
    ]
    # Without bridges the ACL is what it was (the committed example).
    assert broker.render_acl() == broker.render_acl(bridges=())


def test_include_dir_goes_last_and_only_when_asked():
    assert "include_dir" not in broker.render_conf(broker.BrokerSettings())
    conf = broker.render_conf(broker.BrokerSettings(include_dir="/etc/mosquitto/bridges"))
    assert conf.rstrip().splitlines()[-1] == "include_dir /etc/mosquitto/bridges"


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    broker.add_arguments(p)
    return p.parse_args(list(argv))


def test_site_broker_writes_a_private_bridge_file_and_prints_no_password(tmp_path, capsys):
    creds = tmp_path / "creds"
    creds.write_text("dev-aa1:device-secret\nbridge-site-a:bridge-secret-9\n")
    os.chmod(creds, 0o600)
    out = tmp_path / "site"
    assert broker.run(_args("--out", str(out), "--credentials", str(creds), "--generate-passwords",
                            "--bridge-to", "central.example:8883", "--bridge-wards", "w1,w2",
                            "--bridge-name", "site-a", "--bridge-cafile", "/etc/mosquitto/certs/central-ca.crt",
                            "--max-queued", "500000")) == 0
    printed = "".join(capsys.readouterr())
    bridge = out / "bridges" / "site-a.conf"
    assert stat.S_IMODE(bridge.stat().st_mode) == 0o600 and stat.S_IMODE(bridge.parent.stat().st_mode) == 0o700
    assert "remote_password bridge-secret-9" in lines(bridge.read_text())
    assert "bridge-secret-9" not in printed and "bridges/site-a.conf" in printed
    # The remote account is not one of this broker's.
    users = [line.split(":")[0] for line in (out / "wardwatch.passwd").read_text().splitlines()]
    assert "bridge-site-a" not in users and "dev-aa1" in users
    conf = lines((out / "mosquitto.conf").read_text())
    assert {"include_dir /etc/mosquitto/bridges", "max_queued_messages 500000"} <= conf


def test_central_broker_gets_the_bridge_account(tmp_path, capsys):
    out = tmp_path / "central"
    assert broker.run(_args("--out", str(out), "--generate-passwords", "--bridge-account", "bridge-site-a:w1,w2")) == 0
    assert "bridge-site-a" in (out / "wardwatch.passwd").read_text()
    assert (out / "secrets" / "bridge-site-a.password").exists()
    acl = (out / "wardwatch.acl").read_text()
    assert "topic write wardwatch/v1/w2/+/vitals" in acl and "topic read wardwatch/v1/w1/+/durable" in acl
    assert "include_dir" not in (out / "mosquitto.conf").read_text()


@pytest.mark.parametrize(("argv", "message"), [
    (["--bridge-to", "central:8883"], "needs --bridge-wards"),
    (["--bridge-wards", "w1"], "needs --bridge-to"),
    (["--bridge-to", "central", "--bridge-wards", "w1"], "HOST:PORT"),
    (["--bridge-account", "bridge-site-a"], "NAME:WARD"),
    (["--bridge-account", "bridge-x:+"], "invalid ward"),
    (["--max-queued", "100"], "below 1000"),
])
def test_bridge_options_refused(tmp_path, capsys, argv, message):
    assert broker.run(_args("--out", str(tmp_path / "out"), "--generate-passwords", *argv)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
