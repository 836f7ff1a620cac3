"""`wardwatch provision device` end to end on virtual boards: real MicroPython (the
WebAssembly port under Node) behind pseudo-terminals (tests/firmware/virtualboard.py), driven
by real mpremote through the same code path as a USB serial port. What is on a board is read
back with mpremote's own command line, not with the code under test.

The status watch (``--wait-status``) runs against a real Mosquitto with the real firmware
on the host simulator, since the virtual board has no network.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning import firmware_image
from provisioning.board_link import BoardError
from provisioning.first_status import StatusWatch
from provisioning.inventory import Entry
from provisioning.stack.services import Stack
from provisioning.stack.ward import SimProcess, write_credentials
from provisioning.tls import make_test_ca
from tests.firmware.virtualboard import VirtualBoard

REPO = Path(__file__).resolve().parents[2]


def wardwatch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def mpremote(port: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def on_board_sha256(port: str, paths: list[str]) -> dict[str, str]:
    """mpremote's own `sha256sum` of each path (it prints `sha256sum :<path>`, then the hex)."""
    out = mpremote(port, "sha256sum", *(":" + p for p in paths)).splitlines()
    got = {}
    for head, digest in zip(out[::2], out[1::2]):
        assert head.startswith("sha256sum :") and len(digest) == 64, (head, digest)
        got[head.removeprefix("sha256sum :")] = digest
    return got


@pytest.fixture
def site(tmp_path):
    """An inventory's [site]: TLS with a test CA, Wi-Fi with its key in a file."""
    certs = make_test_ca(tmp_path / "certs", ["broker.ward.test"])
    key = tmp_path / "wifi.key"
    key.write_text("wifi-secret-key\n")
    return (f'[site]\nbroker_host = "broker.ward.test"\ntls = true\ncafile = "{certs.ca_cert}"\n'
            f'wifi_ssid = "ward-net"\nwifi_key_file = "{key}"\nrate_hz = 1\n'), Path(certs.ca_cert)


def inventory(tmp_path, site_text: str, devices: dict[str, dict]) -> Path:
    lines = [site_text]
    for dev, table in devices.items():
        lines.append(f"[devices.{dev}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path = tmp_path / "inventory.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_virtual_boards_are_flashed_verified_checked_and_a_second_run_copies_nothing(tmp_path, site):
    site_text, ca = site
    with VirtualBoard(tmp_path / "flash1") as b1, VirtualBoard(tmp_path / "flash2") as b2:
        devices = {
            "bed-01-a": {"ward": "w1", "bed": "01", "board": "esp32", "port": b1.port, "sim": False},
            "bench-02": {"ward": "w9", "bed": "02", "board": "rp2", "port": b2.port, "sim": True, "scenario": "desat"},
            "bed-03-a": {"ward": "w1", "bed": "03", "board": "esp32", "port": str(tmp_path / "no-such-port"),
                         "sim": False},
        }
        inv = inventory(tmp_path, site_text, devices)
        creds, passwd, registry = tmp_path / "devices.creds", tmp_path / "wardwatch.passwd", tmp_path / "devices.toml"
        host_files = ["--credentials", str(creds), "--passwd", str(passwd), "--registry", str(registry)]
        first = wardwatch("provision", "device", "--inventory", str(inv), "--all", *host_files)
        # One board is not there: the batch goes on, the summary says why, the exit code is 1.
        assert first.returncode == 1, first.stdout + first.stderr
        assert "2 of 3 boards provisioned" in first.stdout
        assert "bed-03-a" in first.stdout and "connect: cannot open" in first.stdout
        password = dict(line.split(":", 1) for line in creds.read_text().splitlines())
        assert set(password) == {"bed-01-a", "bench-02", "bed-03-a"}
        for pw in password.values():  # never printed
            assert pw not in first.stdout + first.stderr

        # What the boards hold, read with mpremote itself.
        image = firmware_image.build(REPO / "firmware", firmware_image.MpyTarget(6, 3, None), tmp_path / "img",
                                     firmware_image.compiler_for(firmware_image.MpyTarget(6, 3, None)))
        for board, dev in ((b1, "bed-01-a"), (b2, "bench-02")):
            cfg = json.loads(mpremote(board.port, "cat", ":/config.json"))
            assert cfg["dev"] == dev and cfg["broker"]["user"] == dev and cfg["broker"]["password"] == password[dev]
            assert cfg["broker"]["tls"] is True and cfg["broker"]["cafile"] == "/ca.crt"
            assert cfg["wifi"] == {"ssid": "ward-net", "key": "wifi-secret-key"}
            expected = {p: hashlib.sha256(d).hexdigest() for p, d in image.items()}
            expected["/ca.crt"] = hashlib.sha256(ca.read_bytes()).hexdigest()
            assert on_board_sha256(board.port, sorted(expected)) == expected
        assert json.loads(mpremote(b1.port, "cat", ":/config.json"))["sim"] is False
        bench = json.loads(mpremote(b2.port, "cat", ":/config.json"))
        assert bench["sim"] is True and bench["scenario"] == "desat"

        # Each board was reset and booted into the firmware's config check.
        assert b1.boots >= 2 and b2.boots >= 2
        # The boot's check is the one printed just before the REPL banner (the one provisioning
        # ran over the raw REPL is followed by its end-of-output marks instead).
        boot = "check: ok\n\r\nMicroPython v1."
        assert "check: real sensors: MAX30102 + max30205\n" + boot in b1.transcript().decode()
        assert "check: SIMULATED vitals (sim: true), scenario desat, seed 0\n" in b2.transcript().decode()
        assert boot in b2.transcript().decode()
        assert "bed-01-a:$7$" in passwd.read_text() and '[devices.bench-02]\nward = "w9"\nbed = "02"' in registry.read_text()

        # Again: nothing to copy, no host file changes.
        before = {p: p.read_bytes() for p in (creds, passwd, registry)}
        again = wardwatch("provision", "device", "--inventory", str(inv), "--device", "bed-01-a", *host_files)
        assert again.returncode == 0, again.stdout + again.stderr
        row = [ln for ln in again.stdout.splitlines() if "bed-01-a" in ln][0]
        assert row.split("│")[5].strip() == "0" and row.split("│")[6].strip() == str(len(expected) + 1), row
        assert {p: p.read_bytes() for p in before} == before

        # A stale source module (it would shadow the .mpy) is removed; a changed inventory value
        # copies the one file it changes.
        (tmp_path / "app.py").write_text("raise ImportError('stale')\n")
        mpremote(b2.port, "cp", str(tmp_path / "app.py"), ":/lib/bedside/app.py")
        inv.write_text(inv.read_text().replace("rate_hz = 1", "rate_hz = 2"))
        third = wardwatch("provision", "device", "--inventory", str(inv), "--device", "bench-02",
                          "--port", b2.port, *host_files)
        assert third.returncode == 0, third.stdout + third.stderr
        row = [ln for ln in third.stdout.splitlines() if "bench-02" in ln][0]
        assert row.split("│")[5].strip() == "1", row
        assert "app.py" not in mpremote(b2.port, "ls", ":/lib/bedside")
        assert json.loads(mpremote(b2.port, "cat", ":/config.json"))["rate_hz"] == 2


def test_a_port_without_micropython_fails_with_the_reason(tmp_path, site):
    """(A board of the wrong kind is refused by platform: tests/gateway/test_provision_device.py;
    the virtual board's platform is webassembly, which contradicts no inventory entry.)"""
    site_text, _ = site
    with VirtualBoard(tmp_path / "flash") as board:
        inv = inventory(tmp_path, site_text, {
            "bed-01-a": {"ward": "w1", "bed": "01", "board": "esp32", "port": board.port, "sim": False}})
        # Not a MicroPython board at all: a plain pseudo-terminal that never answers.
        import pty

        master, slave = pty.openpty()
        try:
            out = wardwatch("provision", "device", "--inventory", str(inv), "--device", "bed-01-a",
                            "--port", os.ttyname(slave), "--credentials", str(tmp_path / "creds"))
        finally:
            os.close(master)
            os.close(slave)
        assert out.returncode == 1 and "no MicroPython raw REPL" in out.stdout, out.stdout + out.stderr


@pytest.mark.services
def test_the_status_watch_counts_only_a_live_online_status(tmp_path):
    dev = "sim-w1-01"
    with Stack(tmp_path / "stack") as stack:
        creds = tmp_path / "creds"
        stack.mosquitto.add_users(write_credentials(creds, [dev]))
        stack.mosquitto.stop()
        stack.mosquitto.start()
        e = Entry(dev, "w1", "01", "esp32", "", "", True, "max30205", False, "")
        gw = ("127.0.0.1", stack.mosquitto.port, "wardwatch-gateway", stack.password("wardwatch-gateway"))
        sim = SimProcess(stack, tmp_path, "w1", 1, creds, "--duration", "4").start()
        sim.wait(timeout=60)  # leaves a retained status behind: from before "the flash"
        watch = StatusWatch(*gw, "wardwatch/v1", timeout_s=2)
        try:
            with pytest.raises(BoardError, match="no online status"):
                watch.watch(e).wait()
        finally:
            watch.close()
        watch = StatusWatch(*gw, "wardwatch/v1", timeout_s=60)
        try:
            watcher = watch.watch(e)
            sim = SimProcess(stack, tmp_path, "w1", 1, creds, "--duration", "3").start()
            assert watcher.wait().startswith("online after")
            sim.wait(timeout=60)
        finally:
            watch.close()
