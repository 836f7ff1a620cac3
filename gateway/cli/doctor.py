"""``wardwatch doctor --config FILE``: check a gateway's deployment, one line per check.

Checks: the broker accepts the config's MQTT credentials (``mqtt``); the broker's TLS
certificate verifies against ``mqtt.cafile`` and how long it has left (``tls``; warn under
30 days, fail when expired or invalid); InfluxDB takes a ``doctor`` point through the v2
write API the gateway uses and InfluxQL reads it back (``influx``); the gateway's
``/healthz`` answers ``ok`` (``healthz``: ``degraded`` warns, since the database is down but
batches go to the spool and nothing is lost; ``holding``, ``failed``, ``down`` and no answer
fail); the host clock against the InfluxDB server's ``Date`` header (``clock``; fail beyond
5 s; ``timedatectl``'s NTPSynchronized is reported when available); the spool is empty
(``spool``; warns otherwise); every registered device published in the last 5 minutes
(``devices``; silent devices warn: an unplugged board is an operational matter, not a broken
deployment). Exit 0 when no check failed (warnings alone: 0), 1 otherwise. Secrets are never
printed. Each check returns a ``Result``; ``format_result`` is the one output rule.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import secrets
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import msgspec

OK, WARN, FAIL = "OK", "WARN", "FAIL"
TLS_WARN_DAYS = 30
CLOCK_FAIL_S = 5.0
SILENT_AFTER_S = 300


class Result(msgspec.Struct, frozen=True):
    name: str
    level: str  # OK / WARN / FAIL
    message: str
    fix: str = ""


def format_result(r: Result) -> str:
    line = f"{r.level:<4} {r.name}: {r.message}"
    return f"{line} -> {r.fix}" if r.fix and r.level != OK else line


def exit_code(results: list[Result]) -> int:
    return 1 if any(r.level == FAIL for r in results) else 0


# -- mqtt ----------------------------------------------------------------------------------

_CONNACK_FIX = {
    "not authorized": "check mqtt.username and the password file, and the broker ACL",
    "bad user name or password": "check mqtt.username and mqtt.password_file against the broker's password file",
    "client identifier not valid": "check mqtt.client_id",
    "server unavailable": "the broker is up but not serving: see its log",
}


def mqtt_refused(reason: str) -> Result:
    fix = _CONNACK_FIX.get(reason.lower(), "see the broker log for why it refused the connection")
    return Result("mqtt", FAIL, f"connection refused: {reason.lower()}", fix)


def check_mqtt(cfg, timeout: float = 5.0) -> Result:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    # Our own client id: reusing the gateway's would take over its session.
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wardwatch-doctor-{secrets.token_hex(4)}")
    client.username_pw_set(cfg.mqtt.username, cfg.mqtt_password() or None)
    if cfg.mqtt.tls:
        try:
            client.tls_set(ca_certs=cfg.mqtt.cafile or None)
        except (OSError, ssl.SSLError) as exc:  # a missing or unreadable CA file
            return Result("mqtt", FAIL, f"cannot use mqtt.cafile {cfg.mqtt.cafile!r}: {exc}",
                          "point mqtt.cafile at the broker's CA certificate (PEM), readable by this user")
    done = threading.Event()
    outcome: dict = {}

    def on_connect(c, userdata, flags, reason_code, properties):
        outcome["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    where = f"{cfg.mqtt.host}:{cfg.mqtt.port}"
    try:
        client.connect(cfg.mqtt.host, cfg.mqtt.port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return Result("mqtt", FAIL, f"cannot reach the broker at {where}: {exc}",
                      "check mqtt.host/mqtt.port and that Mosquitto is running (systemctl status mosquitto)")
    client.loop_start()
    try:
        if not done.wait(timeout):
            return Result("mqtt", FAIL, f"no CONNACK from {where} within {timeout:.0f}s",
                          "check mqtt.tls (a plain client on a TLS listener gets no answer) and the broker log")
        rc = outcome["rc"]
        if rc.is_failure:
            return mqtt_refused(str(rc))
        return Result("mqtt", OK, f"connected to {where} as {cfg.mqtt.username}")
    finally:
        client.disconnect()
        client.loop_stop()


# -- tls -----------------------------------------------------------------------------------

def tls_verdict(not_after: dt.datetime, now: dt.datetime, verify_error: str = "") -> Result:
    """The verdict on a server certificate valid until ``not_after`` (aware UTC)."""
    days = (not_after - now).total_seconds() / 86400
    when = not_after.strftime("%Y-%m-%d %H:%M UTC")
    if days < 0:
        return Result("tls", FAIL, f"certificate expired {when} ({-days:.0f} days ago)",
                      "renew the broker certificate (wardwatch provision broker) and restart Mosquitto")
    if verify_error:
        return Result("tls", FAIL, f"certificate does not verify: {verify_error} (notAfter {when})",
                      "check mqtt.cafile is the CA that signed the broker certificate and mqtt.host is in its SANs")
    if days < TLS_WARN_DAYS:
        return Result("tls", WARN, f"certificate expires {when}: {days:.0f} days left",
                      "renew the broker certificate before it expires")
    return Result("tls", OK, f"certificate valid until {when}: {days:.0f} days left")


def not_after_of(der: bytes) -> dt.datetime:
    from cryptography import x509

    return x509.load_der_x509_certificate(der).not_valid_after_utc


def _fetch_cert(host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True)


def check_tls(cfg, timeout: float = 5.0) -> Result:
    if not cfg.mqtt.tls:
        return Result("tls", OK, "not used (mqtt.tls = false)")
    host, port = cfg.mqtt.host, cfg.mqtt.port
    verify_error = ""
    try:
        ctx = ssl.create_default_context(cafile=cfg.mqtt.cafile or None)
        der = _fetch_cert(host, port, ctx, timeout)
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or str(exc)
        try:
            loose = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            loose.check_hostname = False
            loose.verify_mode = ssl.CERT_NONE
            der = _fetch_cert(host, port, loose, timeout)
        except (OSError, ssl.SSLError) as exc2:
            return Result("tls", FAIL, f"certificate does not verify: {verify_error}; cannot fetch it: {exc2}",
                          "check mqtt.cafile and the broker's certfile")
    except (OSError, ssl.SSLError) as exc:
        return Result("tls", FAIL, f"no TLS handshake with {host}:{port}: {exc}",
                      "check mqtt.port is the broker's TLS listener and mqtt.cafile is readable")
    return tls_verdict(not_after_of(der), dt.datetime.now(dt.timezone.utc), verify_error)


# -- influx --------------------------------------------------------------------------------

def database_of(bucket: str) -> str:
    return bucket.partition("/")[0]


def check_influx(cfg, influxql_url: str, database: str) -> Result:
    from influxdb_client import InfluxDBClient, WritePrecision
    from influxdb_client.client.write_api import SYNCHRONOUS

    from ..influxql import InfluxQL, quote_string

    marker = secrets.token_hex(6)
    now_ms = int(time.time() * 1000)
    line = f"doctor,instance={cfg.instance} marker=\"{marker}\" {now_ms}"
    fix_down = "check influx.url and that InfluxDB is running; the gateway spools meanwhile"
    try:
        with InfluxDBClient(url=cfg.influx.url, token=cfg.influx_token(), org=cfg.influx.org,
                            timeout=cfg.influx.timeout_ms) as client:
            client.write_api(write_options=SYNCHRONOUS).write(
                bucket=cfg.influx.bucket, org=cfg.influx.org, record=line, write_precision=WritePrecision.MS)
    except Exception as exc:  # noqa: BLE001 (urllib3 and ApiException alike: one line)
        status = getattr(exc, "status", None)
        if status in (401, 403):
            return Result("influx", FAIL, f"write refused ({status}) at {cfg.influx.url}",
                          "check influx.token_file and the token's write permission on the bucket")
        reason = f"HTTP {status}" if status else type(exc).__name__
        return Result("influx", FAIL, f"cannot write to {cfg.influx.url} bucket {cfg.influx.bucket}: {reason}",
                      fix_down)
    if not database:
        return Result("influx", OK, f"wrote a doctor point to {cfg.influx.bucket} (no database to read back)")
    ql = InfluxQL(influxql_url, database, cfg.influx_token())
    try:
        rows = ql.rows(f"SELECT marker FROM doctor WHERE marker = {quote_string(marker)} AND time >= {now_ms}ms")
    except (OSError, RuntimeError) as exc:
        return Result("influx", FAIL, f"wrote a point but cannot read it back from {influxql_url}: {exc}",
                      "check --influxql (the /query URL) and --database")
    if not rows:
        return Result("influx", FAIL, f"wrote a point but InfluxQL on {database} does not return it",
                      "check that --database maps to influx.bucket")
    return Result("influx", OK, f"wrote and read back a doctor point ({cfg.influx.bucket})")


# -- healthz and spool ---------------------------------------------------------------------

def fetch_health(listen: str, timeout: float = 3.0) -> tuple[dict | None, str]:
    host, _, port = listen.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host.strip("[]")
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.load(r), url
    except urllib.error.HTTPError as exc:
        try:
            return json.load(exc), url
        except ValueError:
            return None, url
    except (OSError, ValueError):
        return None, url


_HEALTH = {
    "ok": (OK, "ok", ""),
    "degraded": (WARN, "degraded: InfluxDB is down, batches go to the spool (nothing lost)",
                 "bring InfluxDB back; the gateway drains the spool itself"),
    "holding": (FAIL, "holding: neither InfluxDB nor the spool takes batches; readings wait in the broker",
                "bring InfluxDB back and free space for the spool (spool.max_bytes, state_dir's disk)"),
    "failed": (FAIL, "failed: a writer thread died or stalled, nothing more is stored",
               "restart the gateway (systemctl restart wardwatch-gateway) and read its log"),
    "down": (FAIL, "down: no broker session, no reading arrives",
             "check the mqtt check above and the gateway log"),
}


def health_verdict(body: dict | None, url: str) -> Result:
    if body is None:
        return Result("healthz", FAIL, f"no answer from {url}",
                      "start the gateway (systemctl status wardwatch-gateway) and check health.listen")
    status = str(body.get("status"))
    level, message, fix = _HEALTH.get(status, (FAIL, f"unknown status {status!r}", "read the gateway log"))
    if status == "failed" and body.get("failure"):
        message += f" ({body['failure']})"
    return Result("healthz", level, message, fix)


def spool_verdict(body: dict | None) -> Result:
    if body is None:
        return Result("spool", WARN, "unknown: /healthz does not answer", "see the healthz check")
    batches, size = int(body.get("spool_batches") or 0), int(body.get("spool_bytes") or 0)
    if batches or size:
        return Result("spool", WARN, f"{batches} batches ({size} bytes) waiting for InfluxDB",
                      "bring InfluxDB back; the gateway drains the spool itself")
    return Result("spool", OK, "empty")


# -- clock ---------------------------------------------------------------------------------

def clock_verdict(offset_s: float | None, ntp: str | None, server: str) -> Result:
    ntp_text = {"yes": "NTP synchronized", "no": "NTP not synchronized"}.get(ntp or "", "NTP state unknown")
    if offset_s is None:
        return Result("clock", WARN, f"cannot read the Date of {server}; {ntp_text}",
                      "see the influx check")
    msg = f"offset {offset_s:+.1f}s against {server}; {ntp_text}"
    if abs(offset_s) > CLOCK_FAIL_S:
        return Result("clock", FAIL, msg, "synchronise the host clock (timedatectl set-ntp true, chrony)")
    return Result("clock", OK, msg)


def _ntp_synchronized() -> str | None:
    try:
        out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() in ("yes", "no") else None


def server_offset(url: str, timeout: float = 3.0) -> float | None:
    """Server Date minus host time (s); the Date has 1 s resolution, so +-1 s is noise."""
    t0 = time.time()
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/ping", timeout=timeout) as r:
            date = r.headers.get("Date")
    except urllib.error.HTTPError as exc:
        date = exc.headers.get("Date")
    except OSError:
        return None
    t1 = time.time()
    if not date:
        return None
    server = email.utils.parsedate_to_datetime(date).timestamp()
    return server + 0.5 - (t0 + t1) / 2  # Date truncates to the second: +0.5 s on average


def check_clock(influxql_url: str) -> Result:
    return clock_verdict(server_offset(influxql_url), _ntp_synchronized(), influxql_url)


# -- devices -------------------------------------------------------------------------------

def silent_verdict(registered: list[str], last_ms: dict[str, int], now_ms: int) -> Result:
    silent = sorted(d for d in registered if now_ms - last_ms.get(d, -(10**15)) > SILENT_AFTER_S * 1000)
    if not registered:
        return Result("devices", OK, "no devices registered")
    if silent:
        shown = ", ".join(silent[:10]) + (f" and {len(silent) - 10} more" if len(silent) > 10 else "")
        return Result("devices", WARN, f"{len(silent)} of {len(registered)} registered devices silent for over "
                      f"{SILENT_AFTER_S // 60} min: {shown}",
                      "check the boards are powered and on the network, or remove them from the registry")
    return Result("devices", OK, f"all {len(registered)} registered devices published in the last "
                  f"{SILENT_AFTER_S // 60} min")


def check_devices(cfg, influxql_url: str, database: str) -> Result:
    from ..config import ConfigError
    from ..influxql import InfluxQL
    from ..registry import Registry

    if not cfg.registry.file:
        return Result("devices", OK, "no registry (registry.file not set)")
    try:
        registered = sorted(Registry.load(cfg.registry.file).placements())
    except ConfigError as exc:
        return Result("devices", FAIL, str(exc), "fix the registry file")
    try:
        rows = InfluxQL(influxql_url, database, cfg.influx_token()).rows("SELECT last(seq) FROM vitals GROUP BY device")
    except (OSError, RuntimeError) as exc:
        return Result("devices", WARN, f"cannot read the last readings: {exc}", "see the influx check")
    last = {r["device"]: int(r["time"]) for r in rows if r.get("device")}
    return silent_verdict(registered, last, int(time.time() * 1000))


# -- command -------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE", required=True, help="the gateway's TOML config")
    parser.add_argument("--influxql", metavar="URL", default=None,
                        help="InfluxDB URL serving InfluxQL /query (default: influx.url)")
    parser.add_argument("--database", default=None,
                        help="database for InfluxQL (default: the part of influx.bucket before '/')")


def run(args) -> int:
    from .. import config

    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        print(f"FAIL config: {exc}")
        return 1
    ql_url = args.influxql or cfg.influx.url
    database = args.database or database_of(cfg.influx.bucket)
    results: list[Result] = []

    def emit(result: Result) -> None:
        results.append(result)
        print(format_result(result), flush=True)

    def guarded(name: str, fn, *a) -> Result:
        try:
            return fn(*a)
        except config.ConfigError as exc:  # an unreadable secret file
            return Result(name, FAIL, str(exc), "fix the config")

    emit(guarded("mqtt", check_mqtt, cfg))
    emit(guarded("tls", check_tls, cfg))
    emit(guarded("influx", check_influx, cfg, ql_url, database))
    body, url = fetch_health(cfg.health.listen)
    emit(health_verdict(body, url))
    emit(check_clock(ql_url))
    emit(spool_verdict(body))
    emit(guarded("devices", check_devices, cfg, ql_url, database))
    return exit_code(results)

