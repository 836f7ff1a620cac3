"""``wardwatch provision broker``: a Mosquitto deployment written into a directory.

What it writes (``--out DIR``):

- ``mosquitto.conf``: no anonymous access, a TLS listener (and, if asked, a plain listener on
  loopback for a gateway on the same host), persistence saved on changes, queues sized for a
  ward's outage. The text comes from :func:`render_conf`.
- ``wardwatch.acl``: the per-device ACL (:func:`render_acl`): a device publishes only its own
  ``vitals``/``status`` and reads only its own ``config`` and ``durable``; the gateway reads
  every ward and writes alarms, NEWS2, command replies and ``durable``; operator stations send
  commands on their own topic, each limited to one ward if asked; displays only read.
- ``wardwatch.passwd``: every account's password, hashed by ``mosquitto_passwd -U``. Device
  passwords come from a ``user:password`` credentials file (mode 0600, as the simulator reads
  it); with ``--generate-passwords`` the gateway and operator accounts that have none get a
  random one, written to ``secrets/<account>.password`` (0600) for the gateway's
  ``password_file`` and the stations. No password is printed or logged.
- ``certs/`` with ``--make-test-ca --hostname NAME``: a CA and a server certificate for a
  test deployment (:mod:`provisioning.tls`).

``provisioning/mosquitto/wardwatch.conf`` and ``provisioning/mosquitto/acl`` are this
module's output for :data:`EXAMPLE_SETTINGS` and :data:`EXAMPLE_OPERATORS` (a test checks
it), and the local stack (``provisioning.stack.services.Mosquitto``) renders its broker
config with the same functions, so what the tests exercise is what a ward deploys.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HELP = "Mosquitto deployment: config, per-device ACL, hashed password file, optional test CA"

PREFIX = "wardwatch/v1"
GATEWAY_USER = "wardwatch-gateway"
# The broker's backlog (stored messages), read by the gateway (gateway/service.py).
BROKER_STORED_TOPIC = "$SYS/broker/store/messages/count"
# The deployment's persistence setting; the stack may override it (Mosquitto.autosave).
AUTOSAVE: tuple[str, ...] = ("autosave_on_changes true", "autosave_interval 1000")

# Account names: a device's name is its MQTT username and its topic level (docs/protocol.md);
# operator and gateway accounts use the same alphabet. Topic words that are not devices.
ACCOUNT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
WARD_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
RESERVED = frozenset({"alarms", "cmd", "news2"})

ROLES = ("station", "display")


@dataclass(frozen=True)
class Operator:
    """An operator account: a ``station`` sends commands and reads alarms and NEWS2, a
    ``display`` only reads them. ``ward`` "+" serves every ward."""

    name: str
    ward: str = "+"
    role: str = "station"


@dataclass(frozen=True)
class Listener:
    port: int
    bind: str | None = None  # None: every interface
    tls: bool = False
    comment: str = ""


@dataclass(frozen=True)
class BrokerSettings:
    """Everything :func:`render_conf` needs; the defaults are the deployment's."""

    password_file: str = "/etc/mosquitto/wardwatch.passwd"
    acl_file: str = "/etc/mosquitto/wardwatch.acl"
    listeners: tuple[Listener, ...] = (
        Listener(8883, tls=True, comment="TLS listener for boards and gateway on the ward network."),
        Listener(1883, "127.0.0.1", comment="Plain listener on loopback only, for a gateway on the same host."),
    )
    certfile: str = "/etc/mosquitto/certs/server.crt"
    keyfile: str = "/etc/mosquitto/certs/server.key"
    cafile: str = "/etc/mosquitto/certs/ca.crt"
    persistence_location: str = "/var/lib/mosquitto/"
    autosave: tuple[str, ...] = AUTOSAVE
    max_queued_messages: int = 200000
    max_inflight_messages: int = 1000
    persistent_client_expiration: str = "7d"
    run_as: str | None = None  # Mosquitto's "user": whom to run as when started as root
    sys_interval: int | None = None
    log_dest: str | None = None
    log_types: tuple[str, ...] = ()
    header: tuple[str, ...] = (
        "Install as /etc/mosquitto/conf.d/wardwatch.conf; see provisioning/README.md.",
    )
    include_dir: str | None = None  # bridges/ of a site broker (render_bridge), 0700


EXAMPLE_SETTINGS = BrokerSettings()
# The committed example ACL: a station serving every ward (the local stack's operator), a
# station limited to ward w1 and a read-only display for w1.
EXAMPLE_OPERATORS: tuple[Operator, ...] = (
    Operator("ward-station"), Operator("ward-station-w1", "w1"), Operator("display-w1", "w1", "display"),
)


def render_conf(s: BrokerSettings) -> str:
    """The Mosquitto config text for ``s``."""
    out = ["# Mosquitto configuration for a WardWatch deployment (Mosquitto 2.x)."]
    out += [f"# {line}" for line in s.header]
    out.append("# No anonymous access: every device and the gateway have their own credentials.")
    if s.run_as:
        out.append(f"user {s.run_as}")
    out += [
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {s.password_file}",
        f"acl_file {s.acl_file}",
    ]
    for lst in s.listeners:
        out.append("")
        if lst.comment:
            out.append(f"# {lst.comment}")
        out.append(f"listener {lst.port}" + (f" {lst.bind}" if lst.bind else ""))
        if lst.tls:
            out += [f"certfile {s.certfile}", f"keyfile {s.keyfile}", f"cafile {s.cafile}", "tls_version tlsv1.2"]
    out += [
        "",
        "# Nothing lost: keep sessions and queued QoS 1 messages across broker restarts, and size",
        "# the queues for a ward's outage. The defaults (1000 queued, 20 in flight) lose or stall:",
        "# 40 beds at 1 Hz fill 1000 messages in 25 s of gateway downtime.",
        "persistence true",
        f"persistence_location {s.persistence_location}",
    ]
    if s.autosave == AUTOSAVE:
        out += [
            "# Save after every 1000 changes, not every 30 s: a SIGKILLed broker then still knows the",
            "# gateway's session and subscription (make bench-broker: at 2,000 readings/s and 500 devices",
            "# 0.3 MB/s written and 8 % CPU, the same CPU as time-based saving; after 100 changes 3 MB/s;",
            "# after every change 240 MB/s and half the throughput). Readings it acknowledged but had not",
            "# saved are not lost either: devices keep them until the gateway's watermark covers them.",
        ]
    out += list(s.autosave)
    out += [
        f"max_queued_messages {s.max_queued_messages}",
        "max_queued_bytes 0",
        f"max_inflight_messages {s.max_inflight_messages}",
        "# Readings are small packets: send them at once rather than waiting to coalesce (Nagle).",
        "set_tcp_nodelay true",
        "# The gateway's persistent session must outlive a long outage (it asks for >= 1 h).",
        f"persistent_client_expiration {s.persistent_client_expiration}",
    ]
    if s.sys_interval is not None:
        out.append(f"# $SYS figures (the gateway reads the stored-message count) every {s.sys_interval} s.")
        out.append(f"sys_interval {s.sys_interval}")
    if s.log_dest:
        out.append(f"log_dest {s.log_dest}")
    out += [f"log_type {t}" for t in s.log_types]
    if s.include_dir:
        out += ["", "# Bridges to the central broker (one 0600 file each: they hold the remote password).",
                f"include_dir {s.include_dir}"]
    return "\n".join(out) + "\n"


# ---- bridges: a site broker forwarding its wards to a central one ---------------------------

# What crosses a bridge, per ward, and which way (Mosquitto: "out" = site to central). Devices
# publish readings and statuses at the site; the gateways run at the central broker and send
# watermarks, device config, alarms, NEWS2 and command replies back to the site's devices,
# displays and stations; the site's stations send commands up. Never "both": each topic has one
# publisher side, so nothing can loop, and the central ACL grants the bridge only these.
BRIDGE_TOPICS: tuple[tuple[str, str], ...] = (
    ("+/vitals", "out"),
    ("+/status", "out"),
    ("cmd/+", "out"),
    ("+/durable", "in"),
    ("+/config", "in"),
    ("alarms/#", "in"),
    ("news2/#", "in"),
    ("cmd/+/reply", "in"),
)

# A central outage is queued by the site broker (the bridge is one persistent client there):
# max_queued_messages applies to it as to any client. 200000 is 40 beds at 1 Hz for 83
# minutes, 200 beds for 16 minutes; size it as beds x rate x the outage to ride out
# (--max-queued). Devices keep only 300 readings each (5 min at 1 Hz) waiting for a watermark,
# so beyond that the site broker's queue (persisted, saved every 1000 changes) is what holds.
BRIDGE_RESTART = (1, 10)  # reconnect backoff, s: base and cap (Mosquitto's decorrelated jitter)


@dataclass(frozen=True)
class Bridge:
    """A site broker's bridge to the central broker where the gateways run.

    ``username``/``password``: the site's account in the central broker (its ACL:
    :func:`render_acl` ``bridges=``). ``cafile``: the central broker's CA as installed at
    the site; given, the bridge uses TLS. The password is written into the bridge file only
    (0600), never printed."""

    name: str
    address: str  # host:port of the central broker
    wards: tuple[str, ...]
    username: str
    password: str
    cafile: str | None = None
    restart_timeout: tuple[int, int] = BRIDGE_RESTART
    keepalive_s: int = 30


@dataclass(frozen=True)
class BridgeAccount:
    """The central broker's side of a bridge: the account one site's bridge logs in with,
    allowed exactly the wards that site serves."""

    name: str
    wards: tuple[str, ...]


def check_bridge_wards(wards) -> tuple[str, ...]:
    wards = tuple(wards)
    if not wards:
        raise ValueError("a bridge needs at least one ward")
    for ward in wards:
        if not WARD_RE.match(ward):
            raise ValueError(f"invalid ward {ward!r} for a bridge ('+' is not allowed: name the wards)")
    if len(set(wards)) != len(wards):
        raise ValueError("a ward is listed twice for the bridge")
    return wards


def render_bridge(b: Bridge) -> str:
    """The bridge file (``include_dir``) for ``b``: Mosquitto's ``connection`` section.
    Contains the remote password: install it 0600, owned by the broker's user."""
    check_account(b.username)
    if not re.match(r"^[a-z0-9][a-z0-9-]{0,63}$", b.name):
        raise ValueError(f"invalid bridge name {b.name!r}")
    host, sep, port = b.address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bridge address {b.address!r}: expected HOST:PORT")
    if not b.password or "\n" in b.password or " " in b.password:
        raise ValueError("the bridge password is empty or has spaces or newlines")
    wards = check_bridge_wards(b.wards)
    base, cap = b.restart_timeout
    out = [
        f"# Bridge {b.name}: this site broker forwards wards {', '.join(wards)} to the central broker",
        "# where the gateways run (provisioning/broker.py render_bridge). 0600: it holds a password.",
        f"connection {b.name}",
        f"address {b.address}",
        "bridge_protocol_version mqttv311",
        "# Persistent on both sides: the central broker keeps the bridge's subscriptions and queues",
        "# what comes back (watermarks, alarms) while the bridge is down; the site queues what goes up.",
        "cleansession false",
        "local_cleansession false",
        f"remote_clientid bridge-{b.name}",
        f"local_clientid bridge-{b.name}-local",
        f"remote_username {b.username}",
        f"remote_password {b.password}",
        "start_type automatic",
        f"restart_timeout {base} {cap}",
        f"keepalive_interval {b.keepalive_s}",
        "# Bridge state on this broker's $SYS only: the central ACL grants the bridge wards, not $SYS.",
        "notifications true",
        "notifications_local_only true",
        "try_private true",
    ]
    if b.cafile:
        out += [f"bridge_cafile {b.cafile}", "bridge_tls_version tlsv1.2", "bridge_insecure false"]
    for ward in wards:
        out.append(f"# ward {ward}")
        out += [f"topic {PREFIX}/{ward}/{suffix} {direction} 1" for suffix, direction in BRIDGE_TOPICS]
    return "\n".join(out) + "\n"


def _bridge_block(acct: BridgeAccount) -> list[str]:
    wards = check_bridge_wards(acct.wards)
    lines = [f"# Site bridge {acct.name} (wards {', '.join(wards)}): forwards its devices' readings and",
             "# statuses and its stations' commands; reads back what the gateway sends to that site.",
             f"user {acct.name}"]
    for ward in wards:
        for suffix, direction in BRIDGE_TOPICS:
            lines.append(f"topic {'write' if direction == 'out' else 'read'} {PREFIX}/{ward}/{suffix}")
    return lines


def _operator_block(op: Operator) -> list[str]:
    ward = op.ward
    scope = "every ward" if ward == "+" else f"ward {ward} only"
    if op.role == "display":
        lines = [f"# Display {op.name} ({scope}): reads alarms and NEWS2, sends nothing.", f"user {op.name}"]
    else:
        lines = [f"# Operator station {op.name} ({scope}).", f"user {op.name}",
                 f"topic write {PREFIX}/{ward}/cmd/{op.name}",
                 f"topic read {PREFIX}/{ward}/cmd/{op.name}/reply"]
    return lines + [f"topic read {PREFIX}/{ward}/alarms/#", f"topic read {PREFIX}/{ward}/news2/#"]


def render_acl(operators: tuple[Operator, ...] | list[Operator] = EXAMPLE_OPERATORS,
               gateway_user: str = GATEWAY_USER, extra: str = "",
               bridges: tuple[BridgeAccount, ...] | list[BridgeAccount] = ()) -> str:
    """The ACL text: device patterns, the gateway, then one block per operator account and
    per site bridge (a central broker's). ``extra`` is appended verbatim (the local stack's
    tester account)."""
    for op in operators:
        check_operator(op)
    out = [
        f"# Mosquitto ACL for WardWatch (MQTT contract v1, topic root {PREFIX}).",
        "# Every device logs in with its own username, which is its device id, so %u pins a device",
        "# to its own topics: it cannot publish readings or status for another device, and it has",
        "# no access to alarms or commands.",
        f"pattern write {PREFIX}/+/%u/vitals",
        f"pattern readwrite {PREFIX}/+/%u/status",
        f"pattern read {PREFIX}/+/%u/config",
        "# End-to-end delivery: how far the gateway has durably handled this device's readings.",
        f"pattern read {PREFIX}/+/%u/durable",
        "",
        "# The gateway reads everything under the root and publishes alarms, NEWS2 and replies.",
        f"user {gateway_user}",
        f"topic read {PREFIX}/#",
        f"topic write {PREFIX}/+/alarms/#",
        f"topic write {PREFIX}/+/news2/#",
        f"topic write {PREFIX}/+/cmd/+/reply",
        f"topic write {PREFIX}/+/+/durable",
        "# The broker's backlog (stored messages), for the gateway's overload figures.",
        f"topic read {BROKER_STORED_TOPIC}",
        "",
        "# Operator accounts (a ward's central station, or the CLI) send commands on their own",
        "# command topic (the account name in the topic is what the gateway audits as \"via\") and",
        "# read alarms and NEWS2; displays only read. Each station or display has its own account,",
        "# limited to the ward it serves (\"+\": every ward).",
    ]
    for i, op in enumerate(operators):
        out += ([""] if i else []) + _operator_block(op)
    for acct in bridges:
        check_account(acct.name)
        out += [""] + _bridge_block(acct)
    text = "\n".join(out) + "\n"
    if extra:
        text += "\n" + extra.rstrip("\n") + "\n"
    return text


# ---- checks and inputs ---------------------------------------------------------------------

def check_account(name: str) -> str:
    if not ACCOUNT_RE.match(name) or name in RESERVED:
        raise ValueError(f"invalid account name {name!r}: [a-z0-9][a-z0-9-]{{2,63}}, not alarms/cmd/news2")
    return name


def check_operator(op: Operator) -> Operator:
    check_account(op.name)
    if op.ward != "+" and not WARD_RE.match(op.ward):
        raise ValueError(f"invalid ward {op.ward!r} for {op.name}")
    if op.role not in ROLES:
        raise ValueError(f"invalid role {op.role!r} for {op.name}: one of {', '.join(ROLES)}")
    return op


def parse_operator(spec: str, role: str = "station") -> Operator:
    """``NAME`` or ``NAME:WARD`` (as in ``--operator ward-station-w1:w1``)."""
    name, _, ward = spec.partition(":")
    return check_operator(Operator(name, ward or "+", role))


def read_credentials(path: Path) -> dict[str, str]:
    """``user:password`` lines (blank lines and ``#`` comments skipped). The file must not be
    readable by group or others."""
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600 it")
    users: dict[str, str] = {}
    for n, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not password:
            raise ValueError(f"{path}:{n}: expected user:password")  # the line is not shown: it may be a secret
        check_account(user)
        if user in users:
            raise ValueError(f"{path}:{n}: {user} appears twice")
        users[user] = password
    return users


def save_credentials(path: Path, users: dict[str, str]) -> None:
    """Write ``users`` as the ``user:password`` file ``read_credentials`` reads (0600)."""
    _write_private(Path(path), "".join(f"{u}:{p}\n" for u, p in users.items()))


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def mosquitto_passwd_binary() -> str:
    for candidate in (shutil.which("mosquitto_passwd"), "/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise FileNotFoundError("mosquitto_passwd not found: run 'make deps' (Debian package mosquitto)")


def write_password_file(path: Path, users: dict[str, str]) -> None:
    """Write ``users`` as a Mosquitto password file (0600), hashed in place by
    ``mosquitto_passwd -U`` (passwords never on a command line)."""
    for user, password in users.items():
        if ":" in user or "\n" in user or "\n" in password:
            raise ValueError(f"invalid credentials for {user!r}")
    save_credentials(path, users)  # the same lines, then hashed in place
    proc = subprocess.run([mosquitto_passwd_binary(), "-U", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        Path(path).unlink(missing_ok=True)  # never leave the plain text behind
        raise RuntimeError(f"mosquitto_passwd -U failed ({proc.returncode})")


# ---- the command ---------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="directory to write the deployment into")
    p.add_argument("--credentials", type=Path,
                   help="user:password lines (mode 0600): every device, and any other account's password")
    p.add_argument("--generate-passwords", action="store_true",
                   help="random passwords for the gateway and operator accounts that have none in --credentials "
                        "(written to OUT/secrets/<account>.password, 0600; never printed)")
    p.add_argument("--gateway-user", default=GATEWAY_USER)
    p.add_argument("--operator", action="append", default=[], metavar="NAME[:WARD]",
                   help="an operator station account, limited to WARD if given (repeatable)")
    p.add_argument("--display", action="append", default=[], metavar="NAME[:WARD]",
                   help="a read-only display account, limited to WARD if given (repeatable)")
    p.add_argument("--install-dir", default="/etc/mosquitto",
                   help="where the files will live; the config names them there (default /etc/mosquitto)")
    p.add_argument("--persistence-dir", default="/var/lib/mosquitto/")
    p.add_argument("--tls-port", type=int, default=8883)
    p.add_argument("--tls-bind", default=None, help="address of the TLS listener (default: every interface)")
    p.add_argument("--plain-port", type=int, default=1883,
                   help="plain listener on 127.0.0.1 for a gateway on the same host; 0: none")
    p.add_argument("--run-as", default=None, help="Mosquitto's 'user' (whom it runs as when started as root)")
    p.add_argument("--make-test-ca", action="store_true",
                   help="create a CA and a server certificate for a test deployment in OUT/certs")
    p.add_argument("--hostname", action="append", default=[],
                   help="the server certificate's names (DNS name or IP address; repeatable)")
    p.add_argument("--max-queued", type=int, default=BrokerSettings.max_queued_messages, metavar="N",
                   help="max_queued_messages: beds x readings/s x the outage to ride out (default %(default)s: "
                        "40 beds at 1 Hz for 83 min)")
    g = p.add_argument_group("bridging a site broker to a central one (docs/deploy.md)")
    g.add_argument("--bridge-to", metavar="HOST:PORT",
                   help="this is a site broker: bridge its wards to the central broker at HOST:PORT "
                        "(writes OUT/bridges/NAME.conf, 0600)")
    g.add_argument("--bridge-wards", metavar="W1,W2", help="the wards this site serves (with --bridge-to)")
    g.add_argument("--bridge-name", default="site", help="the bridge's name (default %(default)s)")
    g.add_argument("--bridge-user", default=None,
                   help="the site's account in the central broker (default bridge-NAME); its password comes "
                        "from --credentials or --generate-passwords")
    g.add_argument("--bridge-cafile", default=None,
                   help="the central broker's CA as installed here: the bridge uses TLS")
    g.add_argument("--bridge-account", action="append", default=[], metavar="NAME:W1,W2",
                   help="this is the central broker: a site bridge's account, allowed those wards (repeatable)")


def settings_from_args(args: argparse.Namespace) -> BrokerSettings:
    inst = str(args.install_dir).rstrip("/")
    listeners = [Listener(args.tls_port, args.tls_bind, tls=True,
                          comment="TLS listener for boards and gateway on the ward network.")]
    if args.plain_port:
        listeners.append(Listener(args.plain_port, "127.0.0.1",
                                  comment="Plain listener on loopback only, for a gateway on the same host."))
    persistence = str(args.persistence_dir).rstrip("/") + "/"
    return BrokerSettings(
        password_file=f"{inst}/wardwatch.passwd", acl_file=f"{inst}/wardwatch.acl",
        listeners=tuple(listeners), certfile=f"{inst}/certs/server.crt", keyfile=f"{inst}/certs/server.key",
        cafile=f"{inst}/certs/ca.crt", persistence_location=persistence, run_as=args.run_as,
        header=(f"Run with mosquitto -c {inst}/mosquitto.conf; see provisioning/README.md.",),
        max_queued_messages=args.max_queued,
        include_dir=f"{inst}/bridges" if args.bridge_to else None,
    )


def parse_bridge_account(spec: str) -> BridgeAccount:
    """``NAME:W1,W2`` (as in ``--bridge-account bridge-site-a:w1,w2``)."""
    name, sep, wards = spec.partition(":")
    if not sep:
        raise ValueError(f"--bridge-account {spec!r}: expected NAME:WARD[,WARD...]")
    return BridgeAccount(check_account(name), check_bridge_wards(w for w in wards.split(",") if w))


def run(args: argparse.Namespace) -> int:
    try:
        operators = [parse_operator(s) for s in args.operator] + [parse_operator(s, "display") for s in args.display]
        check_account(args.gateway_user)
        names = [args.gateway_user] + [op.name for op in operators]
        if len(set(names)) != len(names):
            raise ValueError("gateway and operator accounts must have distinct names")
        if args.make_test_ca and not args.hostname:
            raise ValueError("--make-test-ca needs at least one --hostname")
        if args.max_queued < 1000:
            raise ValueError("--max-queued below 1000 loses readings in a short outage")
        accounts = [parse_bridge_account(spec) for spec in args.bridge_account]
        names += [a.name for a in accounts]
        bridge_user = None
        if args.bridge_to:
            if not args.bridge_wards:
                raise ValueError("--bridge-to needs --bridge-wards")
            bridge_user = check_account(args.bridge_user or f"bridge-{args.bridge_name}")
            wards = check_bridge_wards(w for w in args.bridge_wards.split(",") if w)
            render_bridge(Bridge(args.bridge_name, args.bridge_to, wards, bridge_user, "check"))  # checks only
        elif args.bridge_wards:
            raise ValueError("--bridge-wards needs --bridge-to")
        if len(set(names + ([bridge_user] if bridge_user else []))) != len(names) + bool(bridge_user):
            raise ValueError("gateway, operator and bridge accounts must have distinct names")
        users = read_credentials(args.credentials) if args.credentials else {}
    except (OSError, ValueError) as exc:
        print(f"wardwatch provision broker: {exc}", file=sys.stderr)
        return 2

    missing = [n for n in names + ([bridge_user] if bridge_user else []) if n not in users]
    if missing and not args.generate_passwords:
        print(f"wardwatch provision broker: no password for {', '.join(missing)}: "
              "add them to --credentials or pass --generate-passwords", file=sys.stderr)
        return 2

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    generated = {n: secrets.token_urlsafe(24) for n in missing}
    if generated:
        sdir = out / "secrets"
        sdir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(sdir, 0o700)
        for name, password in generated.items():
            _write_private(sdir / f"{name}.password", password + "\n")
    users.update(generated)
    made = []
    if bridge_user:
        # The site's account lives in the central broker, not in this one's password file.
        bridge = Bridge(args.bridge_name, args.bridge_to, wards, bridge_user, users.pop(bridge_user),
                        cafile=args.bridge_cafile)
        try:
            text = render_bridge(bridge)
        except ValueError as exc:
            print(f"wardwatch provision broker: {exc}", file=sys.stderr)
            return 2
        bdir = out / "bridges"
        bdir.mkdir(mode=0o700, exist_ok=True)
        os.chmod(bdir, 0o700)
        _write_private(bdir / f"{bridge.name}.conf", text)
        made.append(f"bridges/{bridge.name}.conf (0600): wards {', '.join(wards)} to {args.bridge_to} "
                    f"as {bridge_user}{' over TLS' if bridge.cafile else ''}")

    try:
        write_password_file(out / "wardwatch.passwd", users)
    except (OSError, RuntimeError) as exc:
        print(f"wardwatch provision broker: {exc}", file=sys.stderr)
        return 1
    (out / "wardwatch.acl").write_text(render_acl(operators, args.gateway_user, bridges=accounts))
    settings = settings_from_args(args)
    (out / "mosquitto.conf").write_text(render_conf(settings))
    if args.make_test_ca:
        from .tls import make_test_ca

        make_test_ca(out / "certs", args.hostname)
        made.append(f"certs/ (test CA; server certificate for {', '.join(args.hostname)})")

    devices = len(users) - len(names)
    print(f"wrote {out}: mosquitto.conf, wardwatch.acl, wardwatch.passwd ({len(users)} accounts: "
          f"{devices} devices, gateway {args.gateway_user}, {len(operators)} operator accounts"
          + (f", {len(accounts)} site bridge accounts" if accounts else "") + ")")
    for name in generated:
        print(f"  generated password for {name}: secrets/{name}.password (0600)")
    for line in made:
        print(f"  {line}")
    return 0
