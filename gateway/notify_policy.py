"""Alarm notification policy: which alarm events notify whom, with what text, how often.

Pure: alarm events and times (epoch ms) in, ``Notice``s out; no I/O, no clock. Who calls it:
``gateway.sinks.notify.Notifier`` (the shell: durable outbox, sender thread, apprise), under
its lock, with every alarm event (``on_event``) and about twice a second (``tick``).

- **Routing**: a ``Route`` takes events of its wards (``*``: all), priorities, kinds and event
  types. Event types are the engine's (raised, escalated, deescalated, reactivated, latched,
  acked, reminder, cleared) plus ``unacknowledged``: this notifier's own reminder, sent every
  ``remind_s`` while an alarm it notified stays unacknowledged (the engine's ``reminder`` is
  for *acknowledged* alarms that persist).
- **Rate limit**: at most ``rate_per_min`` notices per route in any 60 s. Nothing is dropped
  silently: a notice over the limit is counted and listed, and the next notice the route
  sends carries "k more alarms suppressed by the rate limit" with the list; with no further
  alarm, ``tick`` sends that summary on its own as soon as the window allows.
- **Retries**: ``retry_at`` gives the exponential backoff; past ``max_attempts`` a delivery is
  failed (the shell logs and counts it).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

import msgspec

from .clinical.rules import RULES

if TYPE_CHECKING:
    from .clinical.engine import Alarm, AlarmEvent

ENGINE_EVENTS = ("raised", "escalated", "deescalated", "reactivated", "latched", "acked", "reminder", "cleared")
EVENTS = (*ENGINE_EVENTS, "unacknowledged")
DEFAULT_EVENTS = ("raised", "escalated", "unacknowledged")
WINDOW_MS = 60_000
SUMMARY_LINES = 20  # a summary lists this many suppressed alarms, then says how many more
# Units of each rule's parameter (gateway/clinical/rules.py), for the text.
UNIT = {"spo2": "%", "hr": "/min", "temp": "°C", "batt": "%", "lag": "s", "offline": "s"}
LABEL = {"spo2": "SpO2", "hr": "Pulse", "temp": "Temperature", "sqi": "Signal quality", "batt": "Battery",
         "news2": "NEWS2", "lag": "Ingest lag", "offline": "No data"}
OPEN = ("active", "latched")  # states in which an alarm is unacknowledged


class Route(msgspec.Struct, frozen=True):
    """One notification route. ``targets``: opaque target ids (the shell maps them to apprise
    URLs; the policy never sees a URL). ``remind_s`` 0: no ``unacknowledged`` reminders."""

    name: str
    targets: tuple[str, ...]
    wards: tuple[str, ...] = ("*",)
    priorities: tuple[str, ...] = ("high",)
    kinds: tuple[str, ...] = ("physiological", "technical")
    events: tuple[str, ...] = DEFAULT_EVENTS
    rate_per_min: int = 6
    remind_s: float = 300


class Retry(msgspec.Struct, frozen=True):
    """Delivery retries per (notice, target): wait ``base_s`` * 2^(attempt-1), at most ``max_s``."""

    max_attempts: int = 10
    base_s: float = 5.0
    max_s: float = 600.0


class Notice(msgspec.Struct, frozen=True):
    """One notification for one route's targets. ``key`` is unique per route and notice and
    stable across restarts for event notices (the alarm event's id): the outbox's key and the
    idempotency key webhook receivers dedup on."""

    key: str
    route: str
    targets: tuple[str, ...]
    title: str
    body: str
    at_ms: int


def event_id(ev: "AlarmEvent") -> str:
    """A stable id of one alarm event: alarm id, event type and time (ms)."""
    return f"{ev.alarm.id}/{ev.event}/{ev.at_ms}"


def matches(route: Route, event: str, alarm: "Alarm") -> bool:
    """Does ``route`` take this event type of this alarm?"""
    return (
        event in route.events
        and ("*" in route.wards or alarm.ward in route.wards)
        and alarm.priority in route.priorities
        and alarm.kind in route.kinds
    )


def retry_at(attempts: int, now_ms: int, retry: Retry) -> int | None:
    """When to try again after ``attempts`` failed attempts (epoch ms), or None: give up."""
    if attempts >= retry.max_attempts:
        return None
    delay_s = min(retry.base_s * 2 ** (attempts - 1), retry.max_s)
    return now_ms + int(delay_s * 1000)


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))


def _value(param: str, value: float | None) -> str:
    if value is None:
        return "--"
    text = f"{value:.1f}" if param in ("temp", "lag") else f"{value:.2f}" if param == "sqi" else f"{value:g}"
    unit = UNIT.get(param, "")
    return f"{text} {unit}" if unit else text


def describe(alarm: "Alarm") -> str:
    """One line: ``w1/03 high SpO2 75 < 80``, for summaries."""
    return f"{alarm.ward}/{alarm.bed} {alarm.priority} {alarm.message}"


def render(event: str, alarm: "Alarm", at_ms: int, key: str) -> tuple[str, str]:
    """(title, body) of a notice for ``event`` of ``alarm`` at ``at_ms``.

    Simulated alarms say so first in the title and the body: nobody should run to a bed a
    simulator raised.
    """
    rule = RULES.get(alarm.code)
    param = rule.param if rule else ""
    sim = "[SIMULATED] " if alarm.simulated else ""
    what = "unacknowledged" if event == "unacknowledged" else event
    title = f"{sim}{alarm.priority.upper()} alarm {what}: {alarm.ward}/{alarm.bed} {alarm.message}"
    op = rule.op if rule else ""
    limit = f"{op} {_value(param, alarm.limit)}" if alarm.limit is not None else "--"
    lines = []
    if alarm.simulated:
        lines += ["SIMULATED: this alarm comes from a simulated device, not a patient.", ""]
    lines += [
        f"Event: {what}",
        f"Ward: {alarm.ward}",
        f"Bed: {alarm.bed}",
        f"Parameter: {LABEL.get(param, param or alarm.code)}",
        f"Value: {_value(param, alarm.value)}",
        f"Limit: {limit}",
        f"Priority: {alarm.priority} ({alarm.kind})",
        f"Time: {_utc(at_ms)} (condition since {_utc(alarm.since_ms)})",
        f"Alarm: {alarm.code}: {alarm.message}",
        f"Device: {alarm.device or '-'}",
        f"Idempotency-Key: {key}",
        "",
        "WardWatch is a secondary alarm system: the bedside monitor's own alarms stay primary.",
    ]
    return title, "\n".join(lines)


def summary_text(suppressed: list[str], since_ms: int) -> str:
    """The suppression summary: how many alarms the rate limit held back since when, listed."""
    shown = suppressed[:SUMMARY_LINES]
    more = len(suppressed) - len(shown)
    lines = [f"{len(suppressed)} more alarms suppressed by the rate limit since {_utc(since_ms)}:"]
    lines += [f"- {line}" for line in shown]
    if more:
        lines.append(f"- and {more} more")
    return "\n".join(lines)


class _RouteState:
    __slots__ = ("sent", "suppressed", "suppressed_since", "open", "summaries")

    def __init__(self) -> None:
        self.sent: deque[int] = deque()  # times of the notices in the current window
        self.suppressed: list[str] = []
        self.suppressed_since = 0
        self.open: dict[str, tuple["Alarm", int]] = {}  # alarm id -> (alarm, last notice ms)
        self.summaries = 0


class Policy:
    """The routes' state: rate windows, suppressed alarms, alarms awaiting acknowledgement.

    In memory only: after a gateway restart the windows start empty, and ``seed`` gives the
    restored unacknowledged alarms back so reminders carry on.
    """

    def __init__(self, routes: list[Route]):
        self.routes = routes
        self._state = {r.name: _RouteState() for r in routes}
        self.suppressed_total = 0

    def _allowed(self, route: Route, st: _RouteState, now_ms: int) -> bool:
        while st.sent and now_ms - st.sent[0] >= WINDOW_MS:
            st.sent.popleft()
        return len(st.sent) < route.rate_per_min

    def _track(self, route: Route, st: _RouteState, alarm: "Alarm", now_ms: int, notified: bool) -> None:
        """Keep ``st.open`` to the route's notified alarms that are still unacknowledged."""
        if "unacknowledged" not in route.events or not route.remind_s:
            return
        if alarm.state in OPEN and matches(route, "unacknowledged", alarm) and (notified or alarm.id in st.open):
            st.open[alarm.id] = (alarm, now_ms if notified else st.open[alarm.id][1])
        else:
            st.open.pop(alarm.id, None)

    def _notice(self, route: Route, st: _RouteState, key: str, title: str, body: str, now_ms: int) -> Notice:
        st.sent.append(now_ms)
        if st.suppressed:
            extra = summary_text(st.suppressed, st.suppressed_since)
            body = f"{body}\n\n{extra}" if body else extra
            st.suppressed = []
        return Notice(key, route.name, route.targets, title, body, now_ms)

    def _offer(self, route: Route, st: _RouteState, event: str, alarm: "Alarm", key: str, at_ms: int,
               now_ms: int) -> Notice | None:
        if self._allowed(route, st, now_ms):
            title, body = render(event, alarm, at_ms, key)
            return self._notice(route, st, key, title, body, now_ms)
        if not st.suppressed:
            st.suppressed_since = now_ms
        st.suppressed.append(f"{event}: {describe(alarm)}{' [SIMULATED]' if alarm.simulated else ''} at {_utc(at_ms)}")
        self.suppressed_total += 1
        return None

    def on_event(self, ev: "AlarmEvent", now_ms: int) -> list[Notice]:
        """The notices one alarm event causes, at most one per route."""
        out = []
        for route in self.routes:
            st = self._state[route.name]
            notified = False
            if matches(route, ev.event, ev.alarm):
                notice = self._offer(route, st, ev.event, ev.alarm, f"{event_id(ev)}/{route.name}", ev.at_ms, now_ms)
                notified = True  # a suppressed notice counts too: the summary names it
                if notice:
                    out.append(notice)
            self._track(route, st, ev.alarm, now_ms, notified)
        return out

    def seed(self, alarms: list["Alarm"], now_ms: int) -> None:
        """Unacknowledged alarms restored after a restart: remind of them from now on."""
        for route in self.routes:
            st = self._state[route.name]
            for alarm in alarms:
                self._track(route, st, alarm, now_ms, True)

    def tick(self, now_ms: int) -> list[Notice]:
        """Due ``unacknowledged`` reminders and, where the window allows, suppression summaries."""
        out = []
        for route in self.routes:
            st = self._state[route.name]
            for alarm_id, (alarm, last) in sorted(st.open.items()):
                if now_ms - last >= route.remind_s * 1000:
                    st.open[alarm_id] = (alarm, now_ms)
                    notice = self._offer(route, st, "unacknowledged", alarm, f"{alarm_id}/unacknowledged/{now_ms}/{route.name}",
                                         now_ms, now_ms)
                    if notice:
                        out.append(notice)
            if st.suppressed and self._allowed(route, st, now_ms):
                st.summaries += 1
                n = len(st.suppressed)
                key = f"summary/{route.name}/{now_ms}"
                title = f"{n} more alarms suppressed by the rate limit ({route.name})"
                out.append(self._notice(route, st, key, title, "", now_ms))
        return out
