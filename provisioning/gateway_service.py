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

# credential name -> (the gateway's environment override naming it, the option that installs it).
# notify-urls has no override: a [[notify.routes]] entry names it, urls_file = "credential:notify-urls".
CREDENTIALS = {
    "mqtt-password": ("WARDWATCH_MQTT_PASSWORD_FILE", "mqtt_password_file"),
    "influx-token": ("WARDWATCH_INFLUX_TOKEN_FILE", "influx_token_file"),
    "notify-urls": (None, "notify_urls_file"),
}


# Scale-out by ward (docs/decisions.md, "Scale out with a systemd template unit"): one
# instance of the template per ward group, each with its own config, session, state directory.
TEMPLATE_NAME = "wardwatch-gateway@.service"
INSTANCE_CONFIG = "/etc/wardwatch/gateway-{instance}.toml"
INSTANCE_RE = r"^[a-z0-9][a-z0-9-]{0,31}$"


@dataclass(frozen=True)
class UnitSettings:
    wardwatch: str = DEFAULT_WARDWATCH  # the installed `wardwatch` script (absolute)
    config: str = CONFIG_PATH
    credentials_dir: str = CREDENTIALS_DIR
    credentials: tuple[str, ...] = ("mqtt-password", "influx-token")  # which of CREDENTIALS the unit loads
    watchdog_s: int = 30
    # The template wardwatch-gateway@.service: %i names the ward group; config, state
    # directory, instance name and MQTT client id follow from it (``config`` is ignored).
    template: bool = False


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
        secrets += "".join(f"Environment={CREDENTIALS[name][0]}=credential:{name}\n" for name in creds
                           if CREDENTIALS[name][0])
        secrets += "\n"
    config, state, state_dir, what, identity = s.config, "wardwatch", STATE_DIR, "", ""
    if s.template:
        config = INSTANCE_CONFIG.format(instance="%i")
        state, state_dir, what = "wardwatch/%i", f"{STATE_DIR}/%i", " %i"
        identity = (
            "# One instance per ward group (its config lists the group's wards): its own persistent\n"
            "# MQTT session, state directory (spool, alarm SQLite) and name in the gateway measurement.\n"
            "Environment=WARDWATCH_INSTANCE=%i\n"
            "Environment=WARDWATCH_MQTT_CLIENT_ID=wardwatch-gateway-%i\n"
        )
    header = ("# WardWatch gateway as a systemd service; written by `wardwatch provision gateway`\n"
              "# (provisioning/gateway_service.py), which installs the config and the credentials too.\n")
    if s.template:
        header = ("# WardWatch gateway, one instance per ward group: wardwatch-gateway@GROUP reads\n"
                  f"# {config.replace('%i', 'GROUP')}; written by `wardwatch provision gateway --instance GROUP`\n"
                  "# (provisioning/gateway_service.py), which installs the config and the credentials too.\n")
    return f"""\
{header}# Type=notify: the gateway says READY=1 once its MQTT session is up and its writer runs,
# WATCHDOG=1 from its 1 s main loop while both hold, STOPPING=1 on SIGTERM. A hung or
# disconnected gateway misses the watchdog and is restarted; it loses nothing: what it had
# not acknowledged is redelivered by the broker's persistent session.
# Secondary alarm and trend system, not a medical device.
[Unit]
Description=WardWatch gateway{what} (MQTT -> validation -> InfluxDB)
After=network-online.target mosquitto.service influxdb.service
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={s.wardwatch} gateway --config {config}
WatchdogSec={s.watchdog_s}
Restart=on-failure
RestartSec=5
TimeoutStartSec=90
TimeoutStopSec=30

# No account to manage: a user allocated per start, owning only the state directory
# ({state_dir}: spool/ and alarms.sqlite), which survives restarts.
DynamicUser=yes
StateDirectory={state}
StateDirectoryMode=0750
Environment=WARDWATCH_STATE_DIR={state_dir}
{identity}UMask=0077

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


def group_conflicts(groups: dict[str, tuple[list[str], str]]) -> list[str]:
    """Problems with a set of ward groups, ``instance -> (wards, health listen)`` (pure).

    A bed's alarm state must live in exactly one instance, so each ward belongs to one group
    and no group takes every ward ("+"); each instance needs its own health port."""
    problems: list[str] = []
    owner: dict[str, str] = {}
    listens: dict[str, str] = {}
    for name in sorted(groups):
        wards, listen = groups[name]
        if "+" in wards:
            problems.append(f"{name}: mqtt.wards is \"+\" (every ward): a ward group names its wards")
        for ward in wards:
            if ward != "+" and ward in owner:
                problems.append(f"{name}: ward {ward} is already served by {owner[ward]}")
            owner.setdefault(ward, name)
        if listen in listens:
            problems.append(f"{name}: health.listen {listen} is already used by {listens[listen]}")
        listens.setdefault(listen, name)
    return problems


def default_wardwatch() -> str:
    """The ``wardwatch`` script of the installation running this command."""
    return str(Path(sys.executable).parent / "wardwatch")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help=f"the gateway config to install as {CONFIG_PATH}")
    parser.add_argument("--root", type=Path, default=Path("/"), help="install under this directory (default /)")
    parser.add_argument("--mqtt-password-file", type=Path,
                        help=f"file with the gateway's MQTT password, installed 0600 in {CREDENTIALS_DIR}")
    parser.add_argument("--notify-urls-file", type=Path,
                        help=f"apprise URLs for alarm notifications, one per line, installed 0600 in {CREDENTIALS_DIR} "
                             "(a [[notify.routes]] entry reads them with urls_file = \"credential:notify-urls\")")
    parser.add_argument("--influx-token-file", type=Path,
                        help=f"file with the InfluxDB token, installed 0600 in {CREDENTIALS_DIR}")
    parser.add_argument("--wardwatch", default=None,
                        help="absolute path of the installed wardwatch script for ExecStart "
                             "(default: the one next to this Python)")
    parser.add_argument("--watchdog-s", type=int, default=UnitSettings.watchdog_s,
                        help="WatchdogSec (default %(default)s)")
    parser.add_argument("--instance", metavar="GROUP",
                        help=f"a ward group of a scaled-out site: install the template {TEMPLATE_NAME} and the "
                             f"config as {INSTANCE_CONFIG.format(instance='GROUP')} (its wards must not overlap "
                             "another group's)")
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


def _check_config(path: Path, present: tuple[str, ...] = ()) -> bytes:
    """The config's bytes, if it loads as the unit will load it (credentials resolved in
    CREDENTIALS_DIR) and every credential it names is one the unit loads (``present``)."""
    from gateway import config

    data = _read(path, "the gateway config")
    try:
        cfg = config.load(path, env={"CREDENTIALS_DIRECTORY": CREDENTIALS_DIR})
    except config.ConfigError as exc:
        raise ProvisionError(str(exc)) from None
    for i, route in enumerate(cfg.notify.routes):
        where, name = Path(route.urls_file).parent, Path(route.urls_file).name
        if route.urls_file and str(where) == CREDENTIALS_DIR and name not in present:
            option = f" (--{CREDENTIALS[name][1].replace('_', '-')})" if name in CREDENTIALS else ""
            raise ProvisionError(f"{path}: notify.routes[{i}].urls_file names the credential {name!r}, "
                                 f"which is neither given{option} nor installed")
    for key, value in (("mqtt.password", cfg.mqtt.password), ("influx.token", cfg.influx.token)):
        if value:
            raise ProvisionError(f"{path}: {key}: a secret in the config; give it with "
                                 f"--{key.replace('.', '-')}-file, it is installed as a credential")
    return data


def _check_group(root: Path, instance: str, path: Path) -> None:
    """Refuse a ward group whose wards or health port clash with the installed groups'."""
    import re

    from gateway import config

    if not re.match(INSTANCE_RE, instance):
        raise ProvisionError(f"--instance {instance!r}: [a-z0-9][a-z0-9-]{{0,31}}")
    cfg = config.load(path, env={"CREDENTIALS_DIRECTORY": CREDENTIALS_DIR})
    groups = {instance: (list(cfg.mqtt.wards), cfg.health.listen)}
    installed = root / INSTANCE_CONFIG.format(instance="x").lstrip("/")
    for other in sorted(installed.parent.glob("gateway-*.toml")):
        name = other.name[len("gateway-"):-len(".toml")]
        if name != instance:
            try:
                o = config.load(other, env={"CREDENTIALS_DIRECTORY": CREDENTIALS_DIR})
            except config.ConfigError as exc:
                raise ProvisionError(f"installed group {name}: {exc}") from None
            groups[name] = (list(o.mqtt.wards), o.health.listen)
    problems = group_conflicts(groups)
    if problems:
        raise ProvisionError("; ".join(problems))


def run(args: argparse.Namespace) -> int:
    root = args.root
    instance = getattr(args, "instance", None)
    unit_name = TEMPLATE_NAME if instance else UNIT_NAME
    config_path = INSTANCE_CONFIG.format(instance=instance) if instance else CONFIG_PATH
    enable_command = ENABLE_COMMAND + (f"@{instance}" if instance else "")
    under = lambda p: root / str(p).lstrip("/")  # noqa: E731
    wardwatch = args.wardwatch or default_wardwatch()
    if args.enable and root.resolve() != Path("/"):
        print("wardwatch provision gateway: --enable only with --root /", file=sys.stderr)
        return 2
    try:
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
        config_data = _check_config(args.config, present)
        if instance:
            _check_group(root, instance, args.config)
        unit = render_unit(UnitSettings(wardwatch=wardwatch, credentials=present, watchdog_s=args.watchdog_s,
                                        template=bool(instance)))
    except (ProvisionError, ValueError) as exc:
        print(f"wardwatch provision gateway: {exc}", file=sys.stderr)
        return 2

    changes: list[str] = []

    def record(changed: bool, path: str, what: str) -> None:
        print(f"{'wrote    ' if changed else 'unchanged'} {path}  ({what})")
        if changed:
            changes.append(path)

    try:
        record(_install(under(UNIT_DIR) / unit_name, unit.encode(), 0o644), f"{UNIT_DIR}/{unit_name}", "systemd unit")
        record(_install(under(config_path), config_data, 0o644), config_path, "gateway config")
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
        service = f"wardwatch-gateway@{instance}" if instance else "wardwatch-gateway"
        for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", service]):
            if subprocess.run(cmd).returncode != 0:
                print(f"wardwatch provision gateway: {' '.join(cmd)} failed", file=sys.stderr)
                return 1
    else:
        print(f"to start it: {enable_command}")
    return 0


if __name__ == "__main__":  # regenerate the committed examples: python -m provisioning.gateway_service [--template]
    sys.stdout.write(render_unit(UnitSettings(template="--template" in sys.argv[1:])))
