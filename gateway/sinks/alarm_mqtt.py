"""The alarm engine's MQTT outputs: each ward's event stream, each bed's retained active set
and retained NEWS2, and the replies to commands. Topics and payloads: docs/protocol.md.

Who calls it: ``gateway.sinks.alarms.AlarmService``, under its lock. ``publish`` is the
gateway's MQTT connection (``MqttIngest.publish``: QoS 1, queued by paho, never blocking).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from .. import commands as C
from ..clinical.engine import Alarm, AlarmEvent, News2Update

Publish = Callable[[str, bytes, bool], None]  # topic, payload, retain (always QoS 1)


def alarm_json(alarm: Alarm, event: str = "", at_ms: int = 0, reason: str = "") -> dict:
    """The wire form of an alarm (docs/protocol.md): fields plus the central-station text."""
    data = msgspec.to_builtins(alarm)
    data.pop("latch_pending", None)
    data.pop("notice_ms", None)
    data["acked"] = alarm.acked_by is not None
    data["text"] = alarm.text()
    if event:
        data = {"v": 1, "event": event, "at_ms": at_ms, **({"reason": reason} if reason else {}), **data}
    return data


class AlarmTopics:
    """Publishes under ``prefix`` (e.g. ``wardwatch/v1``)."""

    def __init__(self, prefix: str, publish: Publish):
        self.prefix = prefix
        self._publish = publish

    def event(self, ev: AlarmEvent) -> None:
        """One lifecycle event on ``<prefix>/<ward>/alarms/events`` (not retained)."""
        body = alarm_json(ev.alarm, ev.event, ev.at_ms, ev.reason)
        self._publish(C.events_topic(self.prefix, ev.alarm.ward), msgspec.json.encode(body), False)

    def active(self, ward: str, bed: str, alarms: list[Alarm]) -> None:
        """The bed's active set, retained on ``<prefix>/<ward>/alarms/active/<bed>``."""
        body = {"v": 1, "ward": ward, "bed": bed, "alarms": [alarm_json(a) for a in alarms]}
        self._publish(C.active_topic(self.prefix, ward, bed), msgspec.json.encode(body), True)

    def news2(self, update: News2Update) -> None:
        """The bed's latest NEWS2, retained on ``<prefix>/<ward>/news2/<bed>``."""
        body = {"v": 1, "ward": update.ward, "bed": update.bed, "at_ms": update.at_ms,
                "simulated": update.simulated, **msgspec.to_builtins(update.result)}
        self._publish(C.news2_topic(self.prefix, update.ward, update.bed), msgspec.json.encode(body), True)

    def reply(self, ward: str, account: str, body: dict) -> None:
        """A command's reply on ``<prefix>/<ward>/cmd/<account>/reply`` (not retained)."""
        self._publish(C.command_topic(self.prefix, ward, account) + "/reply", msgspec.json.encode(body), False)
