"""Prometheus metrics for ``/metrics``, served beside ``/healthz`` on the health listener.

Nothing here runs per reading. At scrape time :func:`snapshot` copies the counters the
gateway already keeps (ingest counts and reject reasons, writer stats, spool, lag, alarms)
into a :class:`Snapshot`, and the pure :func:`families` turns that into metric families.
The one metric observed as it happens is ``wardwatch_influx_write_seconds``: one
observation per database write (a batch of up to ``batch_size`` lines), through the
writer's ``on_write`` hook.

Names follow Prometheus conventions (``_total`` counters, base units: seconds, bytes). No
``instance`` label: Prometheus adds the target's. Who calls it: ``gateway.service``
(``Gateway`` builds a :class:`Metrics`; the health handler calls ``Metrics.exposition``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

# Database write latency buckets, seconds: a healthy local write is a few ms, a 5,000-line
# gzip batch to a remote database tens of ms; the client times out at influx.timeout_ms.
WRITE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Snapshot:
    """The gateway's figures at one instant, plain values only (what :func:`families` needs)."""

    messages: dict[str, int] = field(default_factory=dict)  # ingest outcome kind -> count
    rejects: dict[str, int] = field(default_factory=dict)  # reject reason -> count
    writer: dict[str, int] = field(default_factory=dict)  # InfluxWriter.stats
    pending: int = 0
    spool_bytes: int = 0
    spool_segments: int = 0
    lag_ms: dict[str, int] = field(default_factory=dict)  # ward -> ingest lag ms
    mqtt_connected: bool = False
    influx_ok: bool = False
    healthy: bool = False
    broker_stored: int | None = None
    devices_registered: int = 0
    alarms_enabled: bool = False
    alarms_active: dict[tuple[str, str], int] = field(default_factory=dict)  # (ward, priority) -> n
    alarm_events: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (ward, kind, event) -> n
    version: str = ""


def families(s: Snapshot) -> list[Metric]:
    """The metric families for one snapshot (pure)."""
    out: list[Metric] = []

    def counter(name: str, doc: str, value: float) -> None:
        out.append(CounterMetricFamily(name, doc, value=value))

    def gauge(name: str, doc: str, value: float) -> None:
        out.append(GaugeMetricFamily(name, doc, value=value))

    m = s.messages
    counter("wardwatch_readings_received", "Readings taken from the broker: stored + duplicate + rejected "
            "(a rejected malformed status counts here too).",
            m.get("stored", 0) + m.get("duplicate", 0) + m.get("rejected", 0))
    counter("wardwatch_readings_stored", "Readings accepted and handed to the writer (database or spool).",
            m.get("stored", 0))
    counter("wardwatch_readings_duplicate", "Readings dropped as copies already stored (device, seq, ts).",
            m.get("duplicate", 0))
    rej = CounterMetricFamily("wardwatch_readings_rejected", "Messages rejected, by reason (docs/protocol.md).",
                              labels=["reason"])
    for reason, n in sorted(s.rejects.items()):
        rej.add_metric([reason], n)
    out.append(rej)
    msgs = CounterMetricFamily("wardwatch_messages_received", "MQTT messages taken, by outcome kind.",
                               labels=["kind"])
    for kind, n in sorted(m.items()):
        if kind not in ("acked", "watermarks"):
            msgs.add_metric([kind], n)
    out.append(msgs)
    counter("wardwatch_messages_acked", "Messages acknowledged to the broker once durable.", m.get("acked", 0))
    counter("wardwatch_watermarks_published", "End-to-end delivery watermarks published to devices.",
            m.get("watermarks", 0))

    w = s.writer
    counter("wardwatch_influx_lines_written", "Lines written to InfluxDB (directly or drained from the spool).",
            w.get("written_lines", 0))
    counter("wardwatch_influx_lines_spooled", "Lines written to the disk spool while InfluxDB was unavailable.",
            w.get("spooled_lines", 0))
    counter("wardwatch_influx_write_errors", "Failed InfluxDB writes (the batch went to the spool).",
            w.get("write_errors", 0))
    counter("wardwatch_influx_batches", "Batches the writer stored (database or spool).", w.get("batches", 0))
    counter("wardwatch_backpressure_waits", "Times a batch was held: neither InfluxDB nor the spool took it.",
            w.get("backpressure_waits", 0))
    gauge("wardwatch_writer_pending", "Messages waiting for the writer's next batch.", s.pending)
    gauge("wardwatch_spool_bytes", "Bytes in the on-disk spool.", s.spool_bytes)
    gauge("wardwatch_spool_segments", "Batch files in the on-disk spool.", s.spool_segments)

    lag = GaugeMetricFamily("wardwatch_ingest_lag_seconds",
                            "Per ward, the median over its devices of receipt minus measurement time.",
                            labels=["ward"])
    for ward, ms in sorted(s.lag_ms.items()):
        lag.add_metric([ward], ms / 1000)
    out.append(lag)
    gauge("wardwatch_ingest_lag_max_seconds", "The largest ward ingest lag (0 with no ward heard).",
          max(s.lag_ms.values(), default=0) / 1000)

    gauge("wardwatch_mqtt_connected", "1 while the gateway's MQTT session is up.", int(s.mqtt_connected))
    gauge("wardwatch_influx_up", "1 while InfluxDB takes writes (0: batches go to the spool).", int(s.influx_ok))
    gauge("wardwatch_healthy", "1 when /healthz answers 200 (ok or degraded).", int(s.healthy))
    if s.broker_stored is not None:
        gauge("wardwatch_broker_stored_messages", "Mosquitto's stored-message count ($SYS), its backlog.",
              s.broker_stored)
    gauge("wardwatch_devices_registered", "Devices in the registry.", s.devices_registered)

    if s.alarms_enabled:
        active = GaugeMetricFamily("wardwatch_alarms_active", "Alarms not yet cleared, per ward and priority.",
                                   labels=["ward", "priority"])
        for (ward, priority), n in sorted(s.alarms_active.items()):
            active.add_metric([ward, priority], n)
        out.append(active)
        events = CounterMetricFamily("wardwatch_alarm_events",
                                     "Alarm lifecycle events since start, per ward, alarm kind "
                                     "(physiological|technical) and event (raised, cleared, ...).",
                                     labels=["ward", "kind", "event"])
        for (ward, kind, event), n in sorted(s.alarm_events.items()):
            events.add_metric([ward, kind, event], n)
        out.append(events)

    info = InfoMetricFamily("wardwatch_build", "The gateway's version.")
    info.add_metric([], {"version": s.version})
    out.append(info)
    return out


def _copy(counter) -> dict:
    """A copy of a dict another thread may be adding keys to (a rare RuntimeError: retry)."""
    for _ in range(10):
        try:
            return dict(counter)
        except RuntimeError:
            continue
    return {}


def snapshot(gateway) -> Snapshot:
    """Read a running ``gateway.service.Gateway``'s figures (the shell side; scrape thread)."""
    status, _ = gateway.health()
    alarms = gateway.alarms
    active: dict[tuple[str, str], int] = {}
    events: dict[tuple[str, str, str], int] = {}
    if alarms is not None:
        active, events = alarms.metrics()
    return Snapshot(
        messages=_copy(gateway.ingest.counts),
        rejects=_copy(gateway.ingest.rejects),
        writer=_copy(gateway.writer.stats),
        pending=gateway.writer.pending,
        spool_bytes=gateway.spool.bytes,
        spool_segments=len(gateway.spool),
        lag_ms={ward: lag for ward, (lag, _) in gateway.lags.items()},
        mqtt_connected=gateway.ingest.connected.is_set(),
        influx_ok=gateway.writer.db_ok,
        healthy=status == 200,
        broker_stored=gateway.broker_stored,
        devices_registered=len(gateway.registry),
        alarms_enabled=alarms is not None,
        alarms_active=active,
        alarm_events=events,
        version=_version(),
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wardwatch")
    except PackageNotFoundError:
        return "unknown"


class _Collector:
    def __init__(self, gateway):
        self.gateway = gateway

    def collect(self):
        return families(snapshot(self.gateway))


class Metrics:
    """The gateway's registry: its collector, the write-latency histogram, process figures."""

    def __init__(self, gateway):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(gateway))
        self.write_seconds = Histogram("wardwatch_influx_write_seconds", "Duration of each InfluxDB write.",
                                       buckets=WRITE_BUCKETS, registry=self.registry)
        # CPU seconds, memory, open fds and start time (process_*), read from /proc at scrape.
        ProcessCollector(registry=self.registry)

    def exposition(self) -> tuple[bytes, str]:
        """(body, Content-Type) for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
