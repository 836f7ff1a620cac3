"""``wardwatch provision broker`` against real Mosquitto: the generated deployment refuses
anonymous and wrong logins, pins devices to their own topics, lets the gateway read every
ward, keeps a ward-limited operator to its ward, and serves TLS with the generated CA."""

from __future__ import annotations

import os
import secrets
import socket
import ssl
import struct
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from provisioning.stack.services import (
    GATEWAY_USER, TESTER_USER, _binary, _Process, _port_open, free_port, wait_until,
)
from provisioning.broker import save_credentials
from provisioning.tls import make_test_ca

pytestmark = pytest.mark.services
REPO = Path(__file__).resolve().parents[2]
DEVICES = {"dev-aa1": "pw-a", "dev-bb2": "pw-b", "dev-cc3": "pw-c"}


class Client:
    """A paho client that records what it receives; connect() waits for the CONNACK."""

    def __init__(self, port, user, password, client_id, cafile=None, host="127.0.0.1"):
        self.messages: list[tuple[str, bytes]] = []
        self.rc = None
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if user:
            self.c.username_pw_set(user, password)
        if cafile:
            self.c.tls_set(ca_certs=str(cafile))
        self.c.on_connect = self._on_connect
        self.c.on_subscribe = lambda *a: self._subscribed.set()
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.c.connect(host, port)
        self.c.loop_start()
        assert self._connected.wait(10), "no CONNACK"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.rc = reason_code
        self._connected.set()

    @property
    def topics(self) -> list[str]:
        return [t for t, _ in self.messages]

    def subscribe(self, *topics: str) -> None:
        self._subscribed.clear()
        self.c.subscribe([(t, 1) for t in topics])
        assert self._subscribed.wait(10), "no SUBACK"

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class DeployedBroker(_Process):
    """Mosquitto run from the directory ``wardwatch provision broker`` wrote."""

    name = "mosquitto"

    def __init__(self, out: Path, tls_port: int, plain_port: int):
        super().__init__(out)
        self.tls_port, self.plain_port = tls_port, plain_port
        self.secrets = out / "secrets"
        self.ca = out / "certs" / "ca.crt"

    def password(self, account: str) -> str:
        return (self.secrets / f"{account}.password").read_text().strip()

    def start(self) -> "DeployedBroker":
        self._spawn([_binary("mosquitto"), "-c", str(self.workdir / "mosquitto.conf")])
        wait_until(lambda: self._check_alive() or (_port_open(self.tls_port) and _port_open(self.plain_port)),
                   20, "the generated mosquitto to listen")
        return self


def deploy(out: Path, creds: Path, *extra: str) -> tuple[DeployedBroker, subprocess.CompletedProcess]:
    """Run ``wardwatch provision broker`` (a child process, as an operator would) into ``out``
    with a test CA, a TLS listener and a plain loopback one on free ports, and ``extra``
    arguments; the broker is returned unstarted."""
    tls_port, plain_port = free_port(), free_port()
    argv = [sys.executable, "-m", "gateway.cli", "provision", "broker", "--out", str(out),
            "--credentials", str(creds), "--generate-passwords",
            "--make-test-ca", "--hostname", "localhost", "--hostname", "127.0.0.1",
            "--install-dir", str(out), "--persistence-dir", str(out / "data"),
            "--tls-port", str(tls_port), "--tls-bind", "127.0.0.1", "--plain-port", str(plain_port), *extra]
    if os.geteuid() == 0:
        argv += ["--run-as", "root"]  # Mosquitto would switch to 'mosquitto', who cannot read tmp_path
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return DeployedBroker(out, tls_port, plain_port), proc


@pytest.fixture
def deployed(tmp_path):
    """A deployment from the command itself, with a ward-limited operator and display."""
    creds = tmp_path / "devices.creds"
    save_credentials(creds, DEVICES)
    broker, proc = deploy(tmp_path / "broker", creds, "--operator", "ward-station-w1:w1", "--display", "display-w1:w1")
    for account in (GATEWAY_USER, "ward-station-w1", "display-w1"):
        assert broker.password(account) not in proc.stdout + proc.stderr  # never printed
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_generated_broker_refuses_anonymous_and_wrong_passwords(deployed):
    for port, cafile in ((deployed.plain_port, None), (deployed.tls_port, deployed.ca)):
        for user, password in ((None, None), ("dev-aa1", "wrong"), (GATEWAY_USER, "wrong"), ("nobody", "pw-a")):
            c = Client(port, user, password, f"refused-{user}", cafile=cafile)
            assert c.rc.is_failure, (port, user)
            c.close()
    ok = Client(deployed.plain_port, "dev-aa1", DEVICES["dev-aa1"], "dev-aa1")
    assert not ok.rc.is_failure
    ok.close()


def test_generated_broker_lets_the_gateway_read_every_ward_and_pins_devices(deployed):
    gw = Client(deployed.plain_port, GATEWAY_USER, deployed.password(GATEWAY_USER), "gw")
    assert not gw.rc.is_failure
    gw.subscribe("wardwatch/v1/#")
    a = Client(deployed.plain_port, "dev-aa1", DEVICES["dev-aa1"], "dev-aa1")
    c = Client(deployed.plain_port, "dev-cc3", DEVICES["dev-cc3"], "dev-cc3")
    a.publish("wardwatch/v1/w1/dev-bb2/vitals")  # as someone else
    a.publish("wardwatch/v1/w1/dev-bb2/status")
    a.publish("wardwatch/v1/w1/alarms/events")  # a device raises no alarms
    a.publish("wardwatch/v1/w1/dev-aa1/vitals")
    c.publish("wardwatch/v1/w2/dev-cc3/vitals")
    wait_until(lambda: {"wardwatch/v1/w1/dev-aa1/vitals", "wardwatch/v1/w2/dev-cc3/vitals"} <= set(gw.topics),
               10, "readings from both wards at the gateway")
    assert not {"wardwatch/v1/w1/dev-bb2/vitals", "wardwatch/v1/w1/dev-bb2/status",
                "wardwatch/v1/w1/alarms/events"} & set(gw.topics)
    # The gateway writes each device's watermark; the device reads only its own.
    b = Client(deployed.plain_port, "dev-bb2", DEVICES["dev-bb2"], "dev-bb2")
    a.subscribe("wardwatch/v1/w1/dev-bb2/durable", "wardwatch/v1/w1/dev-aa1/durable")
    b.subscribe("wardwatch/v1/w1/dev-bb2/durable")
    gw.publish("wardwatch/v1/w1/dev-bb2/durable", b'{"v":1,"dev":"dev-bb2","seq":1,"top":1}')
    gw.publish("wardwatch/v1/w1/dev-aa1/durable", b'{"v":1,"dev":"dev-aa1","seq":1,"top":1}')
    wait_until(lambda: "wardwatch/v1/w1/dev-aa1/durable" in a.topics, 10, "device A's own watermark")
    wait_until(lambda: "wardwatch/v1/w1/dev-bb2/durable" in b.topics, 10, "device B's own watermark")
    assert a.topics == ["wardwatch/v1/w1/dev-aa1/durable"]
    for client in (gw, a, b, c):
        client.close()


def test_operator_limited_to_w1_commands_w1_but_not_w2_and_displays_only_read(deployed):
    gw = Client(deployed.plain_port, GATEWAY_USER, deployed.password(GATEWAY_USER), "gw")
    gw.subscribe("wardwatch/v1/+/cmd/+")
    op = Client(deployed.plain_port, "ward-station-w1", deployed.password("ward-station-w1"), "station-w1")
    assert not op.rc.is_failure
    op.subscribe("wardwatch/v1/+/cmd/ward-station-w1/reply", "wardwatch/v1/+/alarms/#")
    display = Client(deployed.plain_port, "display-w1", deployed.password("display-w1"), "display-w1")
    display.subscribe("wardwatch/v1/+/alarms/#")

    display.publish("wardwatch/v1/w1/cmd/display-w1", b'{"cmd":"ack"}')  # a display sends nothing
    op.publish("wardwatch/v1/w2/cmd/ward-station-w1", b'{"cmd":"ack"}')  # not its ward
    op.publish("wardwatch/v1/w1/cmd/ward-station-w1", b'{"cmd":"ack"}')
    wait_until(lambda: "wardwatch/v1/w1/cmd/ward-station-w1" in gw.topics, 10, "the w1 command at the gateway")
    assert gw.topics == ["wardwatch/v1/w1/cmd/ward-station-w1"]

    # Replies and alarms: the station and the display see w1's only.
    gw.publish("wardwatch/v1/w2/cmd/ward-station-w1/reply")
    gw.publish("wardwatch/v1/w2/alarms/events")
    gw.publish("wardwatch/v1/w1/cmd/ward-station-w1/reply")
    gw.publish("wardwatch/v1/w1/alarms/events")
    wait_until(lambda: "wardwatch/v1/w1/alarms/events" in op.topics, 10, "w1 alarms at the station")
    wait_until(lambda: "wardwatch/v1/w1/alarms/events" in display.topics, 10, "w1 alarms at the display")
    assert op.topics == ["wardwatch/v1/w1/cmd/ward-station-w1/reply", "wardwatch/v1/w1/alarms/events"]
    assert display.topics == ["wardwatch/v1/w1/alarms/events"]
    for client in (gw, op, display):
        client.close()


def test_tls_listener_verifies_with_the_generated_ca(deployed, tmp_path):
    gw = Client(deployed.plain_port, GATEWAY_USER, deployed.password(GATEWAY_USER), "gw")
    gw.subscribe("wardwatch/v1/+/+/vitals")
    for host in ("127.0.0.1", "localhost"):  # the IP and the DNS SAN
        dev = Client(deployed.tls_port, "dev-aa1", DEVICES["dev-aa1"], f"dev-aa1-{host}", cafile=deployed.ca, host=host)
        assert not dev.rc.is_failure
        dev.publish("wardwatch/v1/w1/dev-aa1/vitals", host.encode())
        wait_until(lambda: ("wardwatch/v1/w1/dev-aa1/vitals", host.encode()) in gw.messages, 10, f"a reading over TLS via {host}")
        dev.close()
    gw.close()
    # Another CA's certificate is not trusted.
    other = make_test_ca(tmp_path / "other-ca", ["localhost"])
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wrong-ca", protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(other.ca_cert))
    with pytest.raises(ssl.SSLError):
        c.connect("127.0.0.1", deployed.tls_port)


def _mqtt_connect_packet(client_id: str, user: str, password: str) -> bytes:
    def s(x: str) -> bytes:
        return struct.pack("!H", len(x)) + x.encode()

    variable = s("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 30)  # v3.1.1, user+password+clean
    body = variable + s(client_id) + s(user) + s(password)
    return bytes([0x10, len(body)]) + body


def test_plain_mqtt_to_the_tls_listener_gets_no_connack(deployed):
    received = b""
    with socket.create_connection(("127.0.0.1", deployed.tls_port), timeout=10) as sock:
        sock.sendall(_mqtt_connect_packet("plain", "dev-aa1", DEVICES["dev-aa1"]))
        while True:  # read until the broker closes or resets the connection (a timeout fails)
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    assert not received.startswith(b"\x20")  # 0x20: CONNACK
    # The same packet on the plain loopback listener is answered with a CONNACK (accepted).
    with socket.create_connection(("127.0.0.1", deployed.plain_port), timeout=10) as sock:
        sock.sendall(_mqtt_connect_packet("plain", "dev-aa1", DEVICES["dev-aa1"]))
        assert sock.recv(4) == b"\x20\x02\x00\x00"


def test_stack_broker_pins_devices_to_their_config_and_durable(stack):
    """The local stack's broker (rendered by the same generator): device A reads neither B's
    config nor B's watermark; each reads its own."""
    stack.mosquitto.add_users({"dev-aa1": "pw-a", "dev-bb2": "pw-b"})
    stack.mosquitto.stop()
    stack.mosquitto.start()
    port = stack.mosquitto.port
    a = Client(port, "dev-aa1", "pw-a", "dev-aa1")
    b = Client(port, "dev-bb2", "pw-b", "dev-bb2")
    a.subscribe("wardwatch/v1/w1/dev-bb2/config", "wardwatch/v1/w1/dev-bb2/durable", "wardwatch/v1/w1/dev-aa1/config")
    b.subscribe("wardwatch/v1/w1/dev-bb2/config", "wardwatch/v1/w1/dev-bb2/durable")
    tester = Client(port, TESTER_USER, stack.password(TESTER_USER), "tester")
    gw = Client(port, GATEWAY_USER, stack.password(GATEWAY_USER), "gw")
    tester.publish("wardwatch/v1/w1/dev-bb2/config", b'{"rate":1}')
    gw.publish("wardwatch/v1/w1/dev-bb2/durable", b'{"v":1,"dev":"dev-bb2","seq":3,"top":3}')
    gw.publish("wardwatch/v1/w1/dev-aa1/config", b'{"rate":1}')  # the gateway writes no config
    tester.publish("wardwatch/v1/w1/dev-aa1/config", b'{"rate":2}')
    wait_until(lambda: "wardwatch/v1/w1/dev-aa1/config" in a.topics, 10, "device A's own config")
    wait_until(lambda: len(b.topics) == 2, 10, "device B's own config and watermark")
    assert a.messages == [("wardwatch/v1/w1/dev-aa1/config", b'{"rate":2}')]
    for client in (a, b, tester, gw):
        client.close()


def test_a_site_broker_bridges_its_ward_to_the_central_one_over_verified_tls(tmp_path):
    """Both brokers from ``provision broker``: the central one with a bridge account for w1,
    the site bridged to the central's TLS listener, trusting the central's CA. A reading
    crosses up and the gateway's watermark comes down. A site that trusts another CA does
    not connect (its log says why), and its reading never reaches the central broker."""
    bridge_user = "bridge-site1"
    creds = tmp_path / "creds"
    save_credentials(creds, {**DEVICES, bridge_user: secrets.token_urlsafe(18)})
    central, _ = deploy(tmp_path / "central", creds, "--bridge-account", f"{bridge_user}:w1")
    central.start()
    to_central = ["--bridge-to", f"127.0.0.1:{central.tls_port}", "--bridge-wards", "w1", "--bridge-user", bridge_user]
    site, out = deploy(tmp_path / "site", creds, *to_central, "--bridge-name", "site1", "--bridge-cafile", str(central.ca))
    assert "over TLS" in out.stdout
    assert "bridge_cafile" in (tmp_path / "site" / "bridges" / "site1.conf").read_text()
    other = make_test_ca(tmp_path / "other-ca", ["127.0.0.1"])
    wrong, _ = deploy(tmp_path / "wrong", creds, *to_central, "--bridge-name", "site2",
                      "--bridge-cafile", str(other.ca_cert))
    clients = []
    try:
        site.start()
        wrong.start()
        gw = Client(central.tls_port, GATEWAY_USER, central.password(GATEWAY_USER), "gw", cafile=central.ca)
        clients.append(gw)
        gw.subscribe("wardwatch/v1/w1/+/vitals")

        stranger = Client(wrong.plain_port, "dev-cc3", DEVICES["dev-cc3"], "dev-cc3")
        clients.append(stranger)
        stranger.publish("wardwatch/v1/w1/dev-cc3/vitals", b"via the wrong CA")
        wait_until(lambda: "certificate verify failed" in wrong.log.read_text(errors="replace"), 30,
                   "the site with the wrong CA to refuse the central's certificate")

        dev = Client(site.plain_port, "dev-aa1", DEVICES["dev-aa1"], "dev-aa1")
        clients.append(dev)
        dev.subscribe("wardwatch/v1/w1/dev-aa1/durable")
        dev.publish("wardwatch/v1/w1/dev-aa1/vitals", b"via the site")
        wait_until(lambda: ("wardwatch/v1/w1/dev-aa1/vitals", b"via the site") in gw.messages, 30,
                   "the site's reading at the central broker, over the TLS bridge")
        mark = b'{"v":1,"dev":"dev-aa1","seq":1,"top":1}'
        gw.publish("wardwatch/v1/w1/dev-aa1/durable", mark, retain=True)
        wait_until(lambda: ("wardwatch/v1/w1/dev-aa1/durable", mark) in dev.messages, 30,
                   "the central's watermark at the site's device")
        assert gw.topics == ["wardwatch/v1/w1/dev-aa1/vitals"]  # nothing from the wrong-CA site
    finally:
        for client in clients:
            client.close()
        for broker in (site, wrong, central):
            broker.stop()
