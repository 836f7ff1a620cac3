"""The alarm shell: feeds the clinical core (``gateway.clinical.engine``), persists to SQLite
(``alarm_store``), publishes to MQTT (``alarm_mqtt``) and writes to InfluxDB (the writer).

Who calls it: ``gateway.ingest.MqttIngest`` (paho's network thread) with every stored
reading and status (``on_outcome``) and every message on a command topic
(``on_command_message``), and the gateway's 1 s loop with ``tick``. One lock serialises
the engine. Each alarm event is published at once (QoS 1) on the ward's event stream, the
bed's retained active set is republished, and the event goes to InfluxDB ``alarm`` with
the next batch; live alarms are saved to SQLite so a restart keeps them (latched alarms
stay latched). Condition timers (delays) start again after a restart. The limits in force
for each bed go to InfluxDB ``limits`` at start and whenever a command changes them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import msgspec

from .. import commands as C
from .. import lineproto
from ..clinical.engine import AlarmEvent, Engine, EngineError, ManualObs, News2Update
from ..clinical.rules import Limits, LimitsError, layer_from_dict, layer_to_dict, limits_in_force, parse_overrides
from ..contract import Reading, Status
from ..registry import Registry
from .alarm_mqtt import AlarmTopics, Publish, alarm_json
from .alarm_store import PatientRow, Store

log = logging.getLogger("wardwatch.alarms")


class AlarmService:
    """See the module docstring. ``publish`` must not block (paho's publish queues)."""

    def __init__(self, prefix: str, registry: Registry, state_dir: Path, limits: Limits, submit: Callable[[str], None],
                 publish: Publish, remind_s: float = 120, obs_valid_s: float = 12 * 3600, limits_source: str = "",
                 on_event: Callable[[AlarmEvent], None] | None = None):
        self.prefix = prefix
        self.engine = Engine(limits, registry, remind_s=remind_s, obs_valid_s=obs_valid_s)
        self.store = Store(Path(state_dir) / "alarms.sqlite")
        self._submit = submit
        self.topics = AlarmTopics(prefix, publish)
        # Every alarm event, before the alarm is saved (gateway.sinks.notify.Notifier.submit:
        # queues notifications, must not block). Before: a crash in between repeats an alarm
        # (and its notice) at the next start rather than losing the notice.
        self._on_event = on_event
        self._lock = threading.Lock()
        self._last_ns = 0
        self._limits_ns = 0
        self.counts = {"events": 0, "commands": 0, "command_errors": 0}
        # (ward, kind, event) -> events since start, for /metrics (gateway/metrics.py).
        self.event_counts: Counter = Counter()
        now = int(time.time() * 1000)
        for row in self.store.patients():
            self.engine.admit(row.ward, row.bed, row.patient, row.scale, layer_from_dict(row.limits), now)
            obs = self.store.latest_observation(row.patient)
            if obs is not None:
                self.engine.beds[(row.ward, row.bed)].obs = obs
        for alarm in self.store.alarms():
            self.engine.restore(alarm)
        self._audit_limits(limits, limits_source, now)
        beds = {(p.ward, p.bed) for p in registry.placements().values()} | set(self.engine.beds)
        self._write_limits(sorted(beds), now)

    def _audit_limits(self, limits: Limits, source: str, now_ms: int) -> None:
        """A changed limits file is a limit change: record it in the audit trail."""
        state = {
            "default": layer_to_dict(limits.default),
            "wards": {w: layer_to_dict(layer) for w, layer in limits.wards.items()},
            "beds": {f"{w}/{b}": layer_to_dict(layer) for (w, b), layer in limits.beds.items()},
        }
        digest = hashlib.sha256(msgspec.json.encode(state, order="sorted")).hexdigest()
        previous = self.store.get_meta("limits")
        if previous is None or msgspec.json.decode(previous).get("sha256") != digest:
            with self.store.tx():
                before = msgspec.json.decode(previous)["limits"] if previous else None
                self.store.audit(now_ms, "config", "gateway", "limits_file", source or "(built-in defaults)", before, state)
                self.store.set_meta("limits", msgspec.json.encode({"sha256": digest, "limits": state}).decode())

    def close(self) -> None:
        self.store.close()

    # -- inputs (paho thread, tick thread) --------------------------------------------------

    def on_outcome(self, outcome, now_ms: int) -> None:
        """Ingest listener: a stored reading or a status (``gateway.ingest.Outcome``).

        A copy the broker redelivers after a crash is harmless: the live alarm was saved, so
        it is not raised twice; a duplicate reading never gets here (ingest drops it).
        """
        if outcome.kind == "stored":
            self.on_reading(outcome.ward, outcome.message, now_ms)
        elif outcome.kind == "status":
            self.on_status(outcome.ward, outcome.message, now_ms)

    def metrics(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str, str], int]]:
        """For a /metrics scrape: active alarms per (ward, priority), events per (ward, kind,
        event). Takes the engine's lock, so it never sees a half-applied reading."""
        with self._lock:
            active = Counter((a.ward, a.priority) for a in self.engine.active())
            return dict(active), dict(self.event_counts)

    def on_command_message(self, topic: str, payload: bytes, now_ms: int) -> None:
        """Ingest route for ``<prefix>/<ward>/cmd/<account>``; other topics are ignored."""
        parsed = C.parse_command_topic(topic, self.prefix)
        if parsed is not None:
            self.on_command(parsed[0], parsed[1], payload, now_ms)

    def on_reading(self, ward: str, r: Reading, now_ms: int) -> None:
        with self._lock:
            self._emit(self.engine.reading(ward, r, now_ms))

    def on_status(self, ward: str, s: Status, now_ms: int) -> None:
        with self._lock:
            self._emit(self.engine.status(ward, s, now_ms))

    def tick(self, now_ms: int, lags: dict[str, tuple[int, bool]] | None = None) -> None:
        """The 1 s loop: timeouts and reminders, and each ward's ingest lag (``gateway.lag``:
        ward -> (median lag ms, simulated)); a ward without one holds its lag alarm."""
        lags = lags or {}
        with self._lock:
            events = self.engine.tick(now_ms)
            for ward in sorted(set(lags) | set(self.engine.wards)):
                lag = lags.get(ward)
                events += self.engine.ward_lag(ward, lag[0] / 1000 if lag else None, bool(lag and lag[1]), now_ms)
            self._emit(events)

    def on_command(self, ward: str, account: str, payload: bytes, now_ms: int) -> None:
        """Decode, apply, persist with its audit row, then reply on the account's reply topic."""
        reply: dict
        request_id = ""
        try:
            cmd = C.decode(payload)
            request_id = cmd.id
            with self._lock:
                result = self._apply(ward, account, cmd, now_ms)
            reply = {"v": 1, "id": request_id, "ok": True, "result": result}
            self.counts["commands"] += 1
        except (C.BadCommand, EngineError, LimitsError) as exc:
            self.counts["command_errors"] += 1
            reply = {"v": 1, "id": request_id, "ok": False, "error": str(exc)}
            log.warning("command refused: %s", exc, extra={"ward": ward, "account": account})
        self.topics.reply(ward, account, reply)

    # -- commands ---------------------------------------------------------------------------

    def _apply(self, ward: str, account: str, cmd: C.Command, now: int):
        e, st = self.engine, self.store
        if isinstance(cmd, C.ListCmd):
            return [alarm_json(a) for a in e.active(ward, cmd.bed)]
        if isinstance(cmd, C.PatientsCmd):
            return [msgspec.to_builtins(p) for p in st.patients() if p.ward == ward]
        if isinstance(cmd, C.AckCmd):
            if (cmd.alarm is None) == (cmd.bed is None):
                raise C.BadCommand("ack needs exactly one of alarm or bed")
            events = e.ack(cmd.alarm, cmd.user, now) if cmd.alarm else e.ack_bed(ward, cmd.bed or "", cmd.user, now)
            acked = [ev.alarm for ev in events if ev.event == "acked"]
            with st.tx():
                for a in acked:
                    st.audit(now, cmd.user, account, "ack", a.id, {"state": "active" if a.state == "acked" else "latched"},
                             {"state": a.state, "message": a.message, "priority": a.priority})
                self._save(events)
            self._emit(events, saved=True)
            return {"acked": [a.id for a in acked]}
        if isinstance(cmd, C.AdmitCmd):
            overrides = parse_overrides(cmd.limits)
            events = e.admit(ward, cmd.bed, cmd.patient, cmd.scale, overrides, now)
            row = PatientRow(cmd.patient, ward, cmd.bed, now, cmd.scale, layer_to_dict(overrides))
            with st.tx():
                st.put_patient(row)
                st.audit(now, cmd.user, account, "admit", cmd.patient, None, msgspec.to_builtins(row))
            self._emit(events)
            self._write_limits([(ward, cmd.bed)], now)
            return msgspec.to_builtins(row)
        if isinstance(cmd, C.AssignCmd):
            before = st.patient(cmd.patient)
            if before is None or before.ward != ward:
                raise EngineError(f"patient {cmd.patient} is not admitted to ward {ward}")
            to_ward = cmd.to_ward or ward
            events = e.assign(cmd.patient, to_ward, cmd.bed, now)
            after = msgspec.structs.replace(before, ward=to_ward, bed=cmd.bed)
            with st.tx():
                st.put_patient(after)
                st.audit(now, cmd.user, account, "assign", cmd.patient, msgspec.to_builtins(before), msgspec.to_builtins(after))
                self._save(events)
            self._emit(events, saved=True)
            self._write_limits([(before.ward, before.bed), (to_ward, cmd.bed)], now)
            return msgspec.to_builtins(after)
        if isinstance(cmd, C.DischargeCmd):
            before = st.patient(cmd.patient)
            if before is None or before.ward != ward:
                raise EngineError(f"patient {cmd.patient} is not admitted to ward {ward}")
            events = e.discharge(cmd.patient, now)
            with st.tx():
                st.delete_patient(cmd.patient)
                st.audit(now, cmd.user, account, "discharge", cmd.patient, msgspec.to_builtins(before), None)
                self._save(events)
            self._emit(events, saved=True)
            self._write_limits([(before.ward, before.bed)], now)
            return {"discharged": cmd.patient, "alarms_ended": len(events)}
        if isinstance(cmd, C.LimitsCmd):
            before = st.patient(cmd.patient)
            if before is None or before.ward != ward:
                raise EngineError(f"patient {cmd.patient} is not admitted to ward {ward}")
            overrides = parse_overrides(cmd.limits)
            e.set_overrides(cmd.patient, overrides, cmd.scale)
            after = msgspec.structs.replace(
                before, limits=layer_to_dict(overrides), scale=cmd.scale if cmd.scale is not None else before.scale
            )
            with st.tx():
                st.put_patient(after)
                st.audit(now, cmd.user, account, "limits", cmd.patient, msgspec.to_builtins(before), msgspec.to_builtins(after))
            self._write_limits([(ward, before.bed)], now)
            return msgspec.to_builtins(after)
        if isinstance(cmd, C.ObsCmd):
            bed = e.beds.get((ward, cmd.bed))
            if bed is None:
                raise EngineError(f"no patient admitted to {ward}/{cmd.bed}")
            obs = ManualObs(rr=cmd.rr, sbp=cmd.sbp, acvpu=cmd.acvpu, o2=cmd.o2, at_ms=now, user=cmd.user)
            before = bed.obs
            events = e.observe(ward, cmd.bed, obs, now)
            with st.tx():
                st.add_observation(bed.patient, bed.obs or obs)
                st.audit(now, cmd.user, account, "observation", f"{ward}/{cmd.bed}",
                         msgspec.to_builtins(before) if before else None, msgspec.to_builtins(obs))
                self._save(events)
            self._emit(events, saved=True)
            news = [ev for ev in events if isinstance(ev, News2Update)]
            return msgspec.to_builtins(news[-1].result) if news else None
        raise C.BadCommand(f"unknown op {cmd!r}")

    # -- outputs ----------------------------------------------------------------------------

    def _save(self, items: list) -> None:
        for item in items:
            if isinstance(item, AlarmEvent):
                self.store.save_alarm(item.alarm)

    def _unique_ns(self, ms: int) -> int:
        # Several events of one alarm can share a millisecond; each must be its own point.
        self._last_ns = max(ms * 1_000_000, self._last_ns + 1)
        return self._last_ns

    def _emit(self, items: list, saved: bool = False) -> None:
        if not items:
            return
        beds: set[tuple[str, str]] = set()
        for item in items:
            if isinstance(item, AlarmEvent):
                a = item.alarm
                self.topics.event(item)
                self._submit(lineproto.alarm(item.event, a, self._unique_ns(item.at_ms)))
                beds.add((a.ward, a.bed))
                self.counts["events"] += 1
                self.event_counts[(a.ward, a.kind, item.event)] += 1
                log.info("alarm %s: %s", item.event, a.text(), extra={"alarm_id": a.id, "event": item.event})
                if self._on_event is not None:
                    self._on_event(item)
            elif isinstance(item, News2Update):
                self._submit(lineproto.news2(item.ward, item.bed, item.result, item.simulated, self._unique_ns(item.at_ms)))
                self.topics.news2(item)
        for ward, bed in beds:
            self.topics.active(ward, bed, self.engine.active(ward, bed))
        if not saved and any(isinstance(item, AlarmEvent) for item in items):
            # After publishing: the display hears first; the disk write follows in microseconds.
            with self.store.tx():
                self._save(items)

    def _write_limits(self, beds: list[tuple[str, str]], now_ms: int) -> None:
        """One ``limits`` point per bed: what its alarms run on now (ward, bed and patient
        layers), for the ward view's colours and the dashboards' thresholds."""
        # Their own clock: stamping them through _unique_ns would push the next alarm event of
        # a replayed (older) reading forward to now.
        for ward, bed in beds:
            self._limits_ns = max(now_ms * 1_000_000, self._limits_ns + 1)
            fields = limits_in_force(self.engine.settings(ward, bed))
            self._submit(lineproto.limits(ward, bed, fields, (ward, bed) in self.engine.beds, self._limits_ns))
