"""`wardwatch provision gateway`: the systemd unit it renders and the files it installs, under
a temporary root (nothing on the host is touched, systemctl is never run)."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

import argparse

from provisioning import cli
from provisioning import gateway_service as gs

REPO = Path(__file__).resolve().parents[2]
WARDWATCH = str(Path(sys.executable).parent / "wardwatch")  # the venv's real script


def test_the_committed_unit_is_the_generators_output_for_the_defaults():
    committed = (REPO / "provisioning" / "systemd" / "wardwatch-gateway.service").read_text()
    assert committed == gs.render_unit(gs.UnitSettings())


def test_the_unit_is_a_supervised_hardened_notify_service():
    unit = gs.render_unit(gs.UnitSettings(wardwatch="/srv/ww/bin/wardwatch", watchdog_s=20))
    lines = set(unit.splitlines())
    for line in [
        "Type=notify", "NotifyAccess=main", "WatchdogSec=20", "Restart=on-failure",
        "ExecStart=/srv/ww/bin/wardwatch gateway --config /etc/wardwatch/gateway.toml",
        "DynamicUser=yes", "StateDirectory=wardwatch", "Environment=WARDWATCH_STATE_DIR=/var/lib/wardwatch",
        "LoadCredential=mqtt-password:/etc/wardwatch/credentials/mqtt-password",
        "LoadCredential=influx-token:/etc/wardwatch/credentials/influx-token",
        "Environment=WARDWATCH_MQTT_PASSWORD_FILE=credential:mqtt-password",
        "Environment=WARDWATCH_INFLUX_TOKEN_FILE=credential:influx-token",
        "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
        "CapabilityBoundingSet=", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter=@system-service", "MemoryDenyWriteExecute=yes",
    ]:
        assert line in lines, line
    # Nothing the old hand-written unit relied on that a dynamic user cannot have.
    assert not any(line.startswith(("User=", "Group=", "EnvironmentFile=")) for line in lines)


def test_only_the_installed_credentials_are_loaded():
    unit = gs.render_unit(gs.UnitSettings(credentials=("mqtt-password",)))
    assert "LoadCredential=mqtt-password:" in unit and "influx-token" not in unit
    assert "LoadCredential" not in gs.render_unit(gs.UnitSettings(credentials=()))
    with pytest.raises(ValueError, match="absolute"):
        gs.render_unit(gs.UnitSettings(wardwatch="wardwatch"))


def verify(unit_path: Path) -> None:
    """`systemd-analyze verify`: exit 0 and nothing said about our unit (unknown keys are
    only warnings, so stderr is checked too)."""
    done = subprocess.run(["systemd-analyze", "verify", str(unit_path)], capture_output=True, text=True, timeout=60)
    about_unit = [line for line in done.stderr.splitlines() if unit_path.name in line]
    assert done.returncode == 0 and not about_unit, done.stderr


def test_systemd_analyze_verify_passes_on_the_generated_unit(tmp_path):
    unit = tmp_path / gs.UNIT_NAME
    unit.write_text(gs.render_unit(gs.UnitSettings(wardwatch=WARDWATCH)))
    verify(unit)
    # ...and the check is real: a misspelt hardening key is caught.
    unit.write_text(unit.read_text().replace("ProtectClock=", "ProtectClok="))
    with pytest.raises(AssertionError, match="Unknown key 'ProtectClok'"):
        verify(unit)


def gateway_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "in" / "gateway.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'instance = "gw7"\n[mqtt]\nhost = "broker.ward.example"\n{extra}')
    return path


def secrets(tmp_path: Path) -> tuple[Path, Path]:
    pw, tok = tmp_path / "in" / "mqtt.pw", tmp_path / "in" / "influx.tok"
    pw.write_text("s3cret-mqtt-pw\n")
    tok.write_text("s3cret-influx-token\n")
    return pw, tok


def provision(root: Path, *args) -> int:
    """`wardwatch provision gateway --root ROOT ...` (its own parser: the other targets'
    modules are not this test's business)."""
    parser = argparse.ArgumentParser()
    gs.add_arguments(parser)
    return gs.run(parser.parse_args(["--root", str(root), "--wardwatch", WARDWATCH, *map(str, args)]))


def test_the_target_is_registered():
    assert ("gateway", "provisioning.gateway_service") in cli.TARGETS


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provision_installs_unit_config_and_credentials_then_changes_nothing(tmp_path, capsys):
    root = tmp_path / "root"
    cfg = gateway_config(tmp_path)
    pw, tok = secrets(tmp_path)
    args = ["--config", cfg, "--mqtt-password-file", pw, "--influx-token-file", tok]
    assert provision(root, *args) == 0
    first = capsys.readouterr().out

    unit = root / "etc/systemd/system/wardwatch-gateway.service"
    installed_cfg = root / "etc/wardwatch/gateway.toml"
    creds = root / "etc/wardwatch/credentials"
    assert unit.read_text() == gs.render_unit(gs.UnitSettings(wardwatch=WARDWATCH))
    assert installed_cfg.read_bytes() == cfg.read_bytes() and mode(installed_cfg) == 0o644
    assert mode(creds) == 0o700
    assert (creds / "mqtt-password").read_text() == "s3cret-mqtt-pw\n" and mode(creds / "mqtt-password") == 0o600
    assert (creds / "influx-token").read_text() == "s3cret-influx-token\n" and mode(creds / "influx-token") == 0o600
    assert "s3cret" not in first
    assert "5 file(s) changed" in first  # unit, config, credentials directory, 2 credentials
    assert first.rstrip().endswith(gs.ENABLE_COMMAND)
    verify(unit)
    # The LoadCredential= paths are where the secrets went.
    for line in unit.read_text().splitlines():
        if line.startswith("LoadCredential="):
            assert (root / line.split(":", 1)[1].lstrip("/")).is_file()

    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}
    assert provision(root, *args) == 0
    second = capsys.readouterr().out
    assert "nothing to change: already provisioned" in second and "wrote" not in second
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()} == before

    # Without the secret options the installed credentials stay and stay loaded.
    assert provision(root, "--config", cfg) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_a_changed_secret_or_mode_is_rewritten(tmp_path, capsys):
    root = tmp_path / "root"
    cfg = gateway_config(tmp_path)
    pw, _ = secrets(tmp_path)
    assert provision(root, "--config", cfg, "--mqtt-password-file", pw) == 0
    out = capsys.readouterr().out
    assert "no influx-token credential installed" in out
    assert "influx-token" not in (root / "etc/systemd/system/wardwatch-gateway.service").read_text()
    (root / "etc/wardwatch/credentials/mqtt-password").chmod(0o644)
    pw.write_text("rotated\n")
    assert provision(root, "--config", cfg, "--mqtt-password-file", pw) == 0
    out = capsys.readouterr().out
    assert "wrote     /etc/wardwatch/credentials/mqtt-password" in out and "1 file(s) changed" in out
    assert "rotated" not in out
    cred = root / "etc/wardwatch/credentials/mqtt-password"
    assert cred.read_text() == "rotated\n" and mode(cred) == 0o600


@pytest.mark.parametrize(("extra", "message"), [
    ('password = "pw-9f3k"\n', "mqtt.password: a secret in the config; give it with --mqtt-password-file"),
    ("port = 0\n", "mqtt.port"),
])
def test_a_config_with_an_inline_secret_or_an_error_installs_nothing(tmp_path, capsys, extra, message):
    root = tmp_path / "root"
    assert provision(root, "--config", gateway_config(tmp_path, extra)) == 2
    err = capsys.readouterr().err
    assert message in err and "pw-9f3k" not in err
    assert not root.exists()


def test_enable_runs_systemctl_only_for_the_real_root(tmp_path, capsys):
    assert provision(tmp_path / "root", "--config", gateway_config(tmp_path), "--enable") == 2
    assert "--enable only with --root /" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_a_root_that_cannot_be_written_is_an_error_not_a_traceback(tmp_path, capsys):
    root = tmp_path / "not-a-directory"
    root.write_text("")
    assert provision(root, "--config", gateway_config(tmp_path)) == 1
    assert "Not a directory" in capsys.readouterr().err


def test_notification_urls_are_installed_as_a_credential_the_route_names(tmp_path, capsys):
    """[[notify.routes]] urls_file = "credential:notify-urls": the unit loads that credential
    (no environment override: the config names it), and systemd-analyze accepts the unit."""
    root = tmp_path / "root"
    cfg = gateway_config(tmp_path, '[[notify.routes]]\nwards = ["w1"]\nurls_file = "credential:notify-urls"\n')
    urls = tmp_path / "in" / "notify.urls"
    urls.write_text("mailtos://user:s3cret-smtp@smtp.example/?to=ward@example\n")
    assert provision(root, "--config", cfg, "--notify-urls-file", urls) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out
    unit = root / "etc/systemd/system/wardwatch-gateway.service"
    text = unit.read_text()
    assert "LoadCredential=notify-urls:/etc/wardwatch/credentials/notify-urls" in text
    assert "=credential:notify-urls" not in text  # no Environment= line for it
    installed = root / "etc/wardwatch/credentials/notify-urls"
    assert installed.read_bytes() == urls.read_bytes() and mode(installed) == 0o600
    verify(unit)


def test_a_route_naming_a_credential_nobody_installs_is_refused(tmp_path, capsys):
    cfg = gateway_config(tmp_path, '[[notify.routes]]\nwards = ["w1"]\nurls_file = "credential:notify-urls"\n')
    assert provision(tmp_path / "root", "--config", cfg) == 2
    assert "names the credential 'notify-urls', which is neither given (--notify-urls-file) nor installed" in \
        capsys.readouterr().err
