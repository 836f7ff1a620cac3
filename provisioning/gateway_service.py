"""``wardwatch provision gateway``: the gateway as a hardened systemd service.

Writes, under ``--root`` (default ``/``), the unit ``etc/systemd/system/wardwatch-gateway.service``
(``render_unit``, a pure function; ``provisioning/systemd/wardwatch-gateway.service`` is its
output for the defaults, a test keeps them equal), the gateway config
``etc/wardwatch/gateway.toml`` (0644: it holds no secret, inline ones are refused) and the
secrets as systemd credentials in ``etc/wardwatch/credentials/`` (directory 0700, files 0600,
root's), which the unit's ``LoadCredential=`` hands to the service's dynamic user in
``$CREDENTIALS_DIRECTORY``; the gateway reads them as ``credential:NAME`` (gateway/config.py).
Secrets are never printed. A file already as it should be is left alone, so a second run
changes nothing and says so. systemctl is run only with ``--enable`` and ``--root /``;
otherwise the command to run is printed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HELP = "install the gateway as a hardened systemd service (unit, config, secrets as credentials)"

UNIT_NAME = "wardwatch-gateway.service"
UNIT_DIR = "/etc/systemd/system"
CONFIG_PATH = "/etc/wardwatch/gateway.toml"
CREDENTIALS_DIR = "/etc/wardwatch/credentials"
DEFAULT_WARDWATCH = "/opt/wardwatch/.venv/bin/wardwatch"
STATE_DIR = "/var/lib/wardwatch"
ENABLE_COMMAND = "systemctl daemon-reload && systemctl enable --now wardwatch-gateway"

# credential name -> (the gateway's environment override naming it, the option that installs it)
CREDENTIALS = {
    "mqtt-password": ("WARDWATCH_MQTT_PASSWORD_FILE", "mqtt_password_file"),
    "influx-token": ("WARDWATCH_INFLUX_TOKEN_FILE", "influx_token_file"),
}


@dataclass(frozen=True)
class UnitSettings:
    wardwatch: str = DEFAULT_WARDWATCH  # the installed `wardwatch` script (absolute)
    config: str = CONFIG_PATH
    credentials_dir: str = CREDENTIALS_DIR
    credentials: tuple[str, ...] = tuple(CREDENTIALS)  # which of CREDENTIALS the unit loads
    watchdog_s: int = 30


def render_unit(s: UnitSettings = UnitSettings()) -> str:
    """The unit file text for ``s`` (pure)."""
    if not os.path.isabs(s.wardwatch) or not os.path.isabs(s.config):
        raise ValueError("the wardwatch script and the config need absolute paths")
    unknown = set(s.credentials) - set(CREDENTIALS)
    if unknown:
        raise ValueError(f"unknown credentials: {sorted(unknown)}")
    creds = [name for name in CREDENTIALS if name in s.credentials]
    secrets = ""
    if creds:
        secrets = "# Secrets: root-only files, handed to the service in $CREDENTIALS_DIRECTORY.\n"
        secrets += "".join(f"LoadCredential={name}:{s.credentials_dir}/{name}\n" for name in creds)
        secrets += "".join(f"Environment={CREDENTIALS[name][0]}=credential:{name}\n" for name in creds)
        secrets += "\n"
    return f"""\
# WardWatch gateway as a systemd service; written by `wardwatch provision gateway`
# (provisioning/gateway_service.py), which installs the config and the credentials too.
# Type=notify: the gateway says READY=1 once its MQTT session is up and its writer runs,
# WATCHDOG=1 from its 1 s main loop while both hold, STOPPING=1 on SIGTERM. A hung or
# disconnected gateway misses the watchdog and is restarted; it loses nothing: what it had
# not acknowledged is redelivered by the broker's persistent session.
# Secondary alarm and trend system, not a medical device.
[Unit]
Description=WardWatch gateway (MQTT -> validation -> InfluxDB)
After=network-online.target mosquitto.service influxdb.service
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={s.wardwatch} gateway --config {s.config}
WatchdogSec={s.watchdog_s}
Restart=on-failure
RestartSec=5
TimeoutStartSec=90
TimeoutStopSec=30

# No account to manage: a user allocated per start, owning only the state directory
# ({STATE_DIR}: spool/ and alarms.sqlite), which survives restarts.
DynamicUser=yes
StateDirectory=wardwatch
StateDirectoryMode=0750
Environment=WARDWATCH_STATE_DIR={STATE_DIR}
UMask=0077

{secrets}# Hardening: the gateway needs the network, its state directory and nothing else.
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
SystemCallArchitectures=native
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes

[Install]
WantedBy=multi-user.target
"""


def default_wardwatch() -> str:
    """The ``wardwatch`` script of the installation running this command."""
    return str(Path(sys.executable).parent / "wardwatch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help=f"the gateway config to install as {CONFIG_PATH}")
    parser.add_argument("--root", type=Path, default=Path("/"), help="install under this directory (default /)")
    parser.add_argument("--mqtt-password-file", type=Path,
                        help=f"file with the gateway's MQTT password, installed 0600 in {CREDENTIALS_DIR}")
    parser.add_argument("--influx-token-file", type=Path,
                        help=f"file with the InfluxDB token, installed 0600 in {CREDENTIALS_DIR}")
    parser.add_argument("--wardwatch", default=None,
                        help="absolute path of the installed wardwatch script for ExecStart "
                             "(default: the one next to this Python)")
    parser.add_argument("--watchdog-s", type=int, default=UnitSettings.watchdog_s,
                        help="WatchdogSec (default %(default)s)")
    parser.add_argument("--enable", action=argparse.BooleanOptionalAction, default=False,
                        help=f"run `{ENABLE_COMMAND}` (only with --root /); default --no-enable: print it")


class ProvisionError(Exception):
    pass


def _install(path: Path, data: bytes, mode: int) -> bool:
    """Write ``data`` to ``path`` with ``mode`` unless it is already so; True if it changed."""
    try:
        if path.read_bytes() == data and (path.stat().st_mode & 0o7777) == mode:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _ensure_dir(path: Path, mode: int) -> bool:
    changed = not path.is_dir()
    path.mkdir(parents=True, exist_ok=True)
    if (path.stat().st_mode & 0o7777) != mode:
        os.chmod(path, mode)
        changed = True
    return changed


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"{path}: cannot read {what}: {exc.strerror}") from None


def _check_config(path: Path) -> bytes:
    from gateway import config

    data = _read(path, "the gateway config")
    try:
        cfg = config.load(path, env={})
    except config.ConfigError as exc:
        raise ProvisionError(str(exc)) from None
    for key, value in (("mqtt.password", cfg.mqtt.password), ("influx.token", cfg.influx.token)):
        if value:
            raise ProvisionError(f"{path}: {key}: a secret in the config; give it with "
                                 f"--{key.replace('.', '-')}-file, it is installed as a credential")
    return data


def run(args: argparse.Namespace) -> int:
    root = args.root
    under = lambda p: root / str(p).lstrip("/")  # noqa: E731
    wardwatch = args.wardwatch or default_wardwatch()
    if args.enable and root.resolve() != Path("/"):
        print("wardwatch provision gateway: --enable only with --root /", file=sys.stderr)
        return 2
    try:
        config_data = _check_config(args.config)
        secrets = {}
        for name, (_, option) in CREDENTIALS.items():
            source = getattr(args, option)
            if source is not None:
                secrets[name] = _read(source, f"the {name}")
                if not secrets[name].strip():
                    raise ProvisionError(f"{source}: the {name} file is empty")
        cred_dir = under(CREDENTIALS_DIR)
        # A credential the unit loads is one given now or installed before.
        present = tuple(n for n in CREDENTIALS if n in secrets or (cred_dir / n).is_file())
        unit = render_unit(UnitSettings(wardwatch=wardwatch, credentials=present, watchdog_s=args.watchdog_s))
    except (ProvisionError, ValueError) as exc:
        print(f"wardwatch provision gateway: {exc}", file=sys.stderr)
        return 2

    changes: list[str] = []

    def record(changed: bool, path: str, what: str) -> None:
        print(f"{'wrote    ' if changed else 'unchanged'} {path}  ({what})")
        if changed:
            changes.append(path)

    try:
        record(_install(under(UNIT_DIR) / UNIT_NAME, unit.encode(), 0o644), f"{UNIT_DIR}/{UNIT_NAME}", "systemd unit")
        record(_install(under(CONFIG_PATH), config_data, 0o644), CONFIG_PATH, "gateway config")
        if secrets or cred_dir.exists():
            record(_ensure_dir(cred_dir, 0o700), CREDENTIALS_DIR + "/", "credentials, root only")
        for name, data in secrets.items():
            record(_install(cred_dir / name, data, 0o600), f"{CREDENTIALS_DIR}/{name}", "credential, 0600")
    except OSError as exc:
        print(f"wardwatch provision gateway: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    for name in CREDENTIALS:
        if name not in present:
            print(f"note: no {name} credential installed (--{CREDENTIALS[name][1].replace('_', '-')}): "
                  "the unit loads none")
    print(f"{len(changes)} file(s) changed" if changes else "nothing to change: already provisioned")

    if args.enable:
        for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "wardwatch-gateway"]):
            if subprocess.run(cmd).returncode != 0:
                print(f"wardwatch provision gateway: {' '.join(cmd)} failed", file=sys.stderr)
                return 1
    else:
        print(f"to start it: {ENABLE_COMMAND}")
    return 0


if __name__ == "__main__":  # regenerate the committed example: python -m provisioning.gateway_service
    sys.stdout.write(render_unit())
