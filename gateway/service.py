"""The gateway service: wires config, registry, ingest, writer, spool and health together.

Run by ``wardwatch gateway --config FILE`` (systemd: provisioning/systemd). The health
listener serves ``/healthz`` (JSON) and ``/metrics`` (Prometheus, gateway/metrics.py). Stops cleanly on
SIGTERM/SIGINT: it stops taking messages, flushes what it holds to InfluxDB or the spool,
acknowledges that, and disconnects. Whatever was not acknowledged stays in the broker's
persistent session for the next start.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import commands, lineproto
from .clinical.rules import Limits, LimitsError
from .config import Config, ConfigError, load_limits
from .dedup import Dedup
from .ingest import MqttIngest, Processor
from .logs import setup_logging
from .notify_policy import Retry, Route
from .metrics import Metrics
from .registry import Registry
from .sinks.alarms import AlarmService
from .sinks.influx import InfluxWriter
from .sinks.notify import Notifier, unknown_urls
from .sinks.spool import Spool

log = logging.getLogger("wardwatch.gateway")

METRICS_INTERVAL_S = 10.0
BROKER_STORED_TOPIC = "$SYS/broker/store/messages/count"


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) our state; a no-op when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.sendall(message.encode())


class Gateway:
    """One gateway instance. ``start()`` returns once running; ``stop()`` shuts down cleanly."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        registry = Registry.load(cfg.registry.file) if cfg.registry.file else Registry()
        state = Path(cfg.state_dir)
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"state_dir: cannot create {state}: {exc.strerror}") from None
        self.spool = Spool(state / "spool", cfg.spool.max_bytes)
        self.processor = Processor(cfg.mqtt.prefix, registry, Dedup())
        # The writer hands durable batches back to ingest (PUBACKs); it is given ingest's
        # on_durable when its threads start, once both exist.
        self.writer = InfluxWriter(
            url=cfg.influx.url,
            token=cfg.influx_token(),
            org=cfg.influx.org,
            bucket=cfg.influx.bucket,
            spool=self.spool,
            batch_size=cfg.influx.batch_size,
            flush_interval_ms=cfg.influx.flush_interval_ms,
            timeout_ms=cfg.influx.timeout_ms,
        )
        self.ingest = MqttIngest(cfg, self.processor, self.writer.submit)
        self.registry = registry
        self.alarms: AlarmService | None = None
        self.notifier: Notifier | None = None
        if cfg.alarms.enabled and cfg.notify.enabled and cfg.notify.routes:
            self.notifier = _notifier(cfg, state)
        if cfg.alarms.enabled:
            try:
                limits = load_limits(cfg.alarms.limits_file) if cfg.alarms.limits_file else Limits()
            except LimitsError as exc:
                raise ConfigError(f"alarms.limits_file: {exc}") from None
            self.alarms = AlarmService(
                cfg.mqtt.prefix, registry, state, limits,
                submit=self.writer.submit_line,
                publish=self.ingest.publish,
                remind_s=cfg.alarms.remind_s, obs_valid_s=cfg.alarms.obs_valid_s,
                limits_source=cfg.alarms.limits_file,
                on_event=self.notifier.submit if self.notifier else None,
            )
            if self.notifier is not None:
                self.notifier.seed(self.alarms.engine.active())
            # Routing by topic kind: readings and statuses reach the engine through ingest's
            # listener; commands have their own topics and go to the alarm shell directly.
            self.ingest.listen(self.alarms.on_outcome)
            for ward in cfg.mqtt.wards:
                self.ingest.route(commands.command_topic(cfg.mqtt.prefix, ward, "+"), self.alarms.on_command_message,
                                  kind="command")
        # The broker's backlog, where it shows it: Mosquitto's count of stored messages (queued
        # for sessions, in flight, retained), published every sys_interval.
        self.broker_stored: int | None = None
        self.ingest.route(BROKER_STORED_TOPIC, self._on_broker_stored, kind="broker_sys")
        self.started = time.monotonic()
        self.lags: dict[str, tuple[int, bool]] = {}  # ward -> (ingest lag ms, simulated), each second
        self._stop = threading.Event()
        self._health: ThreadingHTTPServer | None = None
        # /metrics (Prometheus) on the same listener; read at scrape time, nothing per reading.
        self.metrics = Metrics(self)
        self.writer.on_write = self.metrics.write_seconds.observe

    def _on_broker_stored(self, topic: str, payload: bytes, now_ms: int) -> None:
        try:
            self.broker_stored = int(payload)
        except ValueError:
            pass

    # -- health ---------------------------------------------------------------------------

    def health(self) -> tuple[int, dict]:
        """(HTTP status, body) for /healthz.

        ``ok`` and ``degraded`` (the database is down and batches go to the spool: nothing is
        lost) answer 200. 503: ``failed`` (a writer thread died or stalled: nothing more is
        stored; the watchdog stops too, so systemd restarts the gateway), ``down`` (no broker
        session: no reading arrives) and ``holding`` (neither the database nor the spool
        takes a batch: readings wait unacknowledged in the broker).
        """
        mqtt_ok = self.ingest.connected.is_set()
        failure = self.writer.alive()
        if failure:
            state = "failed"
        elif not mqtt_ok:
            state = "down"
        elif self.writer.backpressure:
            state = "holding"
        elif not self.writer.db_ok:
            state = "degraded"
        else:
            state = "ok"
        body = {
            "status": state,
            **({"failure": failure} if failure else {}),
            "instance": self.cfg.instance,
            "mqtt_connected": mqtt_ok,
            "influx_ok": self.writer.db_ok,
            "spool_batches": len(self.spool),
            "spool_bytes": self.spool.bytes,
            "pending": self.writer.pending,
            "ingest_lag_ms": {ward: lag for ward, (lag, _) in self.lags.items()},
            "broker_stored_messages": self.broker_stored,
            "counts": dict(self.ingest.counts),
            "rejected": dict(self.ingest.rejects),
            "writer": dict(self.writer.stats),
            "devices_registered": len(self.registry),
            "dedup": {"devices": len(self.processor.dedup), "seq_resets": self.processor.dedup.seq_resets,
                      "late": self.processor.dedup.late, "forgotten_devices": self.processor.dedup.forgotten_devices},
            "alarms": (
                {"active": len(self.alarms.engine.active()), **self.alarms.counts} if self.alarms else None
            ),
            "notify": self.notifier.health() if self.notifier else None,
            "uptime_s": int(time.monotonic() - self.started),
        }
        return (200 if state in ("ok", "degraded") else 503), body

    def _serve_health(self) -> None:
        host, _, port = self.cfg.health.listen.rpartition(":")
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                path = self.path.split("?")[0]
                if path == "/metrics":
                    status = 200
                    data, ctype = gateway.metrics.exposition()
                elif path == "/healthz":
                    status, body = gateway.health()
                    data, ctype = json.dumps(body).encode(), "application/json"
                else:
                    self.send_error(404)
                    return
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        try:
            self._health = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"health.listen: cannot listen on {self.cfg.health.listen!r}: {exc}") from None
        self._health.daemon_threads = True
        threading.Thread(target=self._health.serve_forever, name="healthz", daemon=True).start()

    @property
    def health_port(self) -> int:
        return self._health.server_address[1] if self._health else 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._serve_health()
        self.writer.start(self.ingest.on_durable)
        self.ingest.start()
        if self.notifier is not None:
            self.notifier.start()
        threading.Thread(target=self._metrics_loop, name="self-metrics", daemon=True).start()
        log.info("gateway started", extra={"config": self.cfg.redacted(), "healthz_port": self.health_port})

    def _metrics_loop(self) -> None:
        notified = False
        watchdog = bool(os.environ.get("WATCHDOG_USEC"))
        last = time.monotonic()
        while not self._stop.wait(1.0):
            # Ready, and alive for the watchdog, only while the MQTT session is up and the
            # writer threads run: a gateway that cannot reach the broker, or whose writer died
            # or stalled, is restarted by systemd rather than left hanging.
            alive = self.ingest.connected.is_set() and not self.writer.alive()
            if alive and not notified:
                sd_notify("READY=1")
                notified = True
            if watchdog and alive:
                sd_notify("WATCHDOG=1")
            now_ms = time.time_ns() // 1_000_000
            self.ingest.publish_watermarks(now_ms)
            self.lags = self.ingest.lag.lags(now_ms)
            if self.alarms is not None:
                try:
                    self.alarms.tick(now_ms, self.lags)
                except Exception:
                    log.exception("alarm tick failed")
            now = time.monotonic()
            if now - last >= METRICS_INTERVAL_S:
                last = now
                self.writer.submit_line(self._metrics_line())

    def _metrics_line(self) -> str:
        c = self.ingest.counts
        fields = {
            "received": sum(v for k, v in c.items() if k not in ("acked", "watermarks")),
            "stored": c["stored"],
            "duplicates": c["duplicate"],
            "rejected": c["rejected"],
            "acked": c["acked"],
            "spool_bytes": self.spool.bytes,
            "spool_batches": len(self.spool),
            "pending": self.writer.pending,
            "write_ms": round(self.writer.last_write_ms, 2),
            "ingest_lag_ms": max((lag for lag, _ in self.lags.values()), default=0),
            **({"broker_stored": self.broker_stored} if self.broker_stored is not None else {}),
        }
        return lineproto.gateway(fields, self.cfg.instance, time.time_ns())

    def stop(self) -> None:
        sd_notify("STOPPING=1")
        self._stop.set()
        self.ingest.stop()
        self.writer.stop()
        self.ingest.close()
        if self.notifier is not None:
            self.notifier.stop()  # after ingest: no alarm event comes any more
        if self.alarms is not None:
            self.alarms.close()
        if self._health:
            self._health.shutdown()
            self._health.server_close()
        log.info("gateway stopped", extra={"counts": dict(self.ingest.counts)})


def _notifier(cfg: Config, state: Path) -> Notifier:
    """The notifier of ``[notify]``. A route without URLs, or with one apprise does not
    know, is a config error; the URL itself is never shown (it may hold a secret)."""
    routes = []
    for index, r in enumerate(cfg.notify.routes):
        urls = cfg.notify_urls(index)
        if not urls:
            raise ConfigError(f"notify.routes[{index}] ({r.name}): no URL in urls, urls_file or urls_env")
        bad = unknown_urls(urls)
        if bad:
            raise ConfigError(f"notify.routes[{index}] ({r.name}): URL number {', '.join(map(str, bad))} is not one "
                              "apprise supports (not shown: it may hold a secret)")
        route = Route(r.name, (), tuple(r.wards), tuple(r.priorities), tuple(r.kinds), tuple(r.events),
                      r.rate_per_min, r.remind_s)
        routes.append((route, urls))
    retry = Retry(cfg.notify.retry.max_attempts, cfg.notify.retry.base_s, cfg.notify.retry.max_s)
    return Notifier(routes, retry, state)


def run(cfg: Config) -> int:
    """Run until SIGTERM/SIGINT. Returns the process exit code."""
    setup_logging(cfg.log.level, cfg.log.format)
    gateway = Gateway(cfg)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    gateway.start()
    done.wait()
    gateway.stop()
    return 0
