"""The bedside app: sample -> reading -> outbox -> MQTT, for one device.

Config is a plain dict, the format of a board's ``/config.json``::

    {"dev": "bed-3-a", "ward": "w1",
     "broker": {"host": "10.0.0.2", "port": 8883, "user": "bed-3-a", "password": "..",
                "tls": true, "cafile": "/ca.crt", "keepalive": 30},
     "prefix": "wardwatch/v1", "rate_hz": 1, "outbox_cap": 300, "board": "esp32",
     "sim": true, "seed": 3, "scenario": "stable"}

Only ``dev``, ``ward`` and ``broker.host`` are required; ``check_config`` fills in the rest
(``DEFAULTS``, ``BROKER_DEFAULTS``) and raises ValueError naming the bad key.

Tasks while powered: the sampler (one reading per 1/rate_hz s; seq +1 and wraps at 2**32),
the publisher (sends outbox items in order through the client's in-flight window; an item
leaves the outbox on its PUBACK, or, once the gateway speaks end-to-end delivery, when the
gateway's watermark covers it: below), and the status task (retained ``online`` status on
every connect and every ``status_s``). The client's last will is the ``offline`` status.
With simulated sensors, the scenario's ``power`` and ``network`` events act here: power off
drops the socket without DISCONNECT and loses RAM (outbox, uptime); the device boots again
after ``for_s`` (seq continues, as on a board that keeps it in RTC memory). Network down
drops the connection likewise and keeps sampling into the outbox.

End-to-end delivery (docs/protocol.md): every reading carries ``low``, the oldest seq still
in the outbox, and the device subscribes to its ``durable`` topic. From the first watermark
it hears, a reading the broker acknowledged stays in the outbox until a watermark covers
it, because a broker's PUBACK is not storage. What stays uncovered is sent again, in order,
after every reconnect, at once when the watermark's ``top`` shows the gateway has later
readings (a gap: at most every ``GAP_RESEND_MS``), and after ``RESEND_FIRST_MS`` without
the watermark moving (the wait doubles each time, up to ``RESEND_MAX_MS``, so a gateway
that is down for long is not flooded). A full outbox drops the oldest of those first: the
broker most likely holds them.

Who calls it: ``main.py`` on boards (``App(cfg, ...).run()`` next to its own tasks),
``wardsim.sim`` on the host (many Apps in one event loop), and tests.
"""

import asyncio
import json

from . import VERSION
from . import board as board_mod
from . import clock
from .mqtt import MQTTClient, MQTTError
from .mqttpacket import topic_name
from .outbox import Outbox
from .reading import DEFAULT_PREFIX, Encoder, status, topic, valid_id, will

RESEND_FIRST_MS = 30000
RESEND_MAX_MS = 600000
GAP_RESEND_MS = 5000  # at most this often for a gap the gateway reports (``top`` > ``seq``)

DEFAULTS = {
    "prefix": DEFAULT_PREFIX,
    "rate_hz": 1,
    "outbox_cap": 300,  # 5 min at 1 Hz; ~200 B per reading, sized for an ESP32 without PSRAM
    "board": "host",
    "sim": False,  # real sensors unless the config says "sim": true (never simulate by accident)
    "seed": 0,
    "scenario": "stable",
    "status_s": 30,
    "max_inflight": 8,
    "config_topic": True,  # subscribe to <prefix>/<ward>/<dev>/config (retained)
    "seq": 0,  # first seq after boot, where the board kept none
    "phase_ms": 0,  # delay before the first reading (the simulator staggers devices)
}
BROKER_DEFAULTS = {
    "port": None,  # 8883 with tls, else 1883
    "user": None,  # the device id: the broker's ACL requires it
    "password": None,
    "tls": False,
    "cafile": None,
    "keepalive": 30,
    "backoff_min_ms": 500,
    "backoff_max_ms": 5000,  # a monitor must be back within seconds of the broker
    "timeout_ms": 10000,
}
MAX_RATE_HZ = 1000


def check_config(cfg):
    """Validate a config dict and return a new one with every default filled in. ``dev``,
    ``ward`` and ``prefix`` must make valid MQTT topic names (``mqttpacket.topic_name``):
    a topic the broker refuses would cost the device its connection on every publish."""
    out = dict(DEFAULTS)
    out.update(cfg)
    broker = dict(BROKER_DEFAULTS)
    broker.update(cfg.get("broker") or {})
    out["broker"] = broker
    if not valid_id(out.get("dev")):
        raise ValueError("dev: need a device id [a-z0-9][a-z0-9-]{2,31}, got %r" % (out.get("dev"),))
    if not valid_id(out.get("ward"), 1):
        raise ValueError("ward: need a ward id [a-z0-9][a-z0-9-]{0,31}, got %r" % (out.get("ward"),))
    prefix = out["prefix"]
    if not isinstance(prefix, str) or prefix[:1] == "$" or "" in prefix.split("/"):
        raise ValueError("prefix: need levels joined by '/', none empty, not starting with '$', got %r" % (prefix,))
    for kind in ("vitals", "status", "config"):
        try:
            topic_name(topic(prefix, out["ward"], out["dev"], kind))
        except ValueError as e:
            raise ValueError("prefix: %s" % (e,))
    if not broker.get("host"):
        raise ValueError("broker.host is required")
    if broker["port"] is None:
        broker["port"] = 8883 if broker["tls"] else 1883
    if broker["user"] is None:
        broker["user"] = out["dev"]
    rate = out["rate_hz"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= MAX_RATE_HZ:
        raise ValueError("rate_hz: need 0 < rate_hz <= %d, got %r" % (MAX_RATE_HZ, rate))
    if not isinstance(out["max_inflight"], int) or out["max_inflight"] < 1:
        raise ValueError("max_inflight: need an int >= 1")
    if not isinstance(out["outbox_cap"], int) or out["outbox_cap"] < out["max_inflight"] + 2:
        raise ValueError("outbox_cap: need an int >= max_inflight + 2")
    if not isinstance(out["seq"], int) or not 0 <= out["seq"] <= 0xFFFFFFFF:
        raise ValueError("seq: need 0..2**32-1")
    if out["board"] not in ("host", "esp32", "rp2"):
        raise ValueError("board: host, esp32 or rp2")
    if not isinstance(out["sim"], bool):
        raise ValueError("sim: need true or false, got %r" % (out["sim"],))
    return out


def tls_context(broker):
    """An SSL context that verifies the broker: against ``broker.cafile``, or on CPython the
    system's CAs when there is none. A board has no CA store, so there ``cafile`` is
    required (ValueError): an unverified broker could collect every device's password."""
    import ssl

    cafile = broker.get("cafile")
    if hasattr(ssl, "create_default_context"):  # CPython
        return ssl.create_default_context(cafile=cafile)  # pyright: ignore[reportAttributeAccessIssue]
    if not cafile:
        raise ValueError("broker.tls on a board needs broker.cafile")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # MicroPython
    with open(cafile, "rb") as f:
        ctx.load_verify_locations(cadata=f.read())
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class App:
    """One device. ``sensors``: an object with ``sample(t_s)`` (and optionally ``events``,
    ``(at_s, "power"|"network", for_s)``); by default a ``simvitals.Patient`` from the
    config's seed and scenario. ``board``: a ``bedside.board`` profile. ``ssl``: an SSL
    context (default: made from the config when ``broker.tls``). ``log(msg)``: optional.
    """

    def __init__(self, cfg, sensors=None, board=None, ssl=None, log=None):
        self.cfg = cfg = check_config(cfg)
        self.dev = cfg["dev"]
        if sensors is None:
            if not cfg["sim"]:
                raise ValueError("sim is false but no sensor drivers were given")
            from .simvitals import Patient

            sensors = Patient(cfg["seed"], cfg["scenario"])
        self.sensors = sensors
        self.board = board if board is not None else board_mod.profile(cfg)
        broker = cfg["broker"]
        self._ssl = ssl if ssl is not None or not broker["tls"] else tls_context(broker)
        self._log = log
        pre, ward, dev = cfg["prefix"], cfg["ward"], self.dev
        self.topic_vitals = topic(pre, ward, dev, "vitals").encode()
        self.topic_status = topic(pre, ward, dev, "status").encode()
        self.topic_config = topic(pre, ward, dev, "config")
        self.topic_durable = topic(pre, ward, dev, "durable")
        self._enc = Encoder(dev, cfg["sim"])
        self._period_ms = 1000 / cfg["rate_hz"]
        self._status_ms = int(cfg["status_s"] * 1000)

        self.seq = cfg["seq"]  # the next reading's seq
        self.acked = 0  # readings acknowledged by the broker, since the App was made
        self.lost = 0  # readings in RAM when the power went off
        self.refused = 0  # readings the broker refused (dropped by the client), all boots
        self._dropped_before = 0  # outbox drops in earlier (simulated) boots
        self.outbox = None
        self.client = None
        self.powered = False
        self._sent = 0  # outbox[:_sent] are handed to the client (protected from drops)
        self._wm = None  # the gateway's watermark (None: none heard; PUBACK releases)
        self._acked_n = 0  # outbox[:_acked_n]: PUBACKed, waiting for the watermark
        self._resend_pos = 0  # outbox[_resend_pos:_resend_end] are to be sent again
        self._resend_end = 0
        self._wm_moved_ms = 0  # when the watermark last released a reading (or waiting began)
        self._resend_ms = RESEND_FIRST_MS
        self._gap_resend_ms = None  # when a gap was last resent (ticks; None: never)
        self.resent = 0  # readings sent again because no watermark covered them
        self._tasks = []
        self._extra = []  # events and link watcher: they live across simulated reboots
        self._net_ok = True  # False while a scenario's network outage lasts
        self._link = True
        self._stopping = False
        self._t0 = None
        self._boot_ms = None
        self._last_ts = -1  # the previous reading's ts and tq
        self._last_tq = None
        self._more = asyncio.Event()  # outbox has unsent items
        self._drained = asyncio.Event()  # outbox became empty
        self._status_ev = asyncio.Event()  # publish status now
        self._done = asyncio.Event()

    # -- counters -----------------------------------------------------------------------

    @property
    def dropped(self):
        """Readings dropped by a full outbox, over all boots of this App."""
        return self._dropped_before + (self.outbox.dropped if self.outbox is not None else 0)

    @property
    def outbox_len(self):
        return len(self.outbox) if self.outbox is not None else 0

    def connected(self):
        return self.client is not None and self.client.isconnected()

    def stats(self):
        """``{"seq_next", "acked", "dropped", "outbox", "lost", "refused", "resent"}``. With no
        power events and no seq wrap: seq_next - first seq == acked + dropped + refused +
        outbox (``acked``: readings that left the outbox confirmed)."""
        return {
            "seq_next": self.seq,
            "acked": self.acked,
            "dropped": self.dropped,
            "outbox": self.outbox_len,
            "lost": self.lost,
            "refused": self.refused,
            "resent": self.resent,
        }

    # -- life cycle ---------------------------------------------------------------------

    async def run(self):
        """Boot, then run until ``stop()`` has finished."""
        self._t0 = clock.ticks_ms()
        await self._power_on()
        events = getattr(self.sensors, "events", None)
        if events:
            self._extra.append(asyncio.create_task(self._events(events)))
        if self.board.link_up is not None:
            self._extra.append(asyncio.create_task(self._watch_link()))
        await self._done.wait()

    async def stop(self, flush_timeout=5.0):
        """Stop sampling, wait up to ``flush_timeout`` s for the outbox to empty, then
        publish the retained ``offline`` status and disconnect cleanly (DISCONNECT, so the
        broker sends no last will: the status says it instead, or displays would keep
        showing a switched-off device as online). When the power is off (scenario) there
        is nothing to do. Returns True when the outbox was empty."""
        if self._stopping:
            await self._done.wait()
            return self.outbox_len == 0
        self._stopping = True
        for t in self._extra:
            t.cancel()
        if self.powered:
            sampler, publisher, status_task = self._tasks
            sampler.cancel()
            status_task.cancel()
            if self.outbox_len:
                self._drained.clear()
                try:
                    await asyncio.wait_for(self._drained.wait(), flush_timeout)
                except asyncio.TimeoutError:
                    pass
            publisher.cancel()
            if self.client.isconnected():
                # Sent before DISCONNECT on the same stream, so the broker retains it first.
                try:
                    await asyncio.wait_for(
                        self.client.publish(self.topic_status, will(self.dev), True, 1), flush_timeout
                    )
                except (asyncio.TimeoutError, MQTTError):
                    pass
            await self.client.disconnect()
        self._done.set()
        return self.outbox_len == 0

    async def _power_on(self):
        cfg = self.cfg
        broker = cfg["broker"]
        self._boot_ms = clock.ticks_ms()
        self.outbox = Outbox(cfg["outbox_cap"])
        self._sent = self._acked_n = self._resend_pos = self._resend_end = 0
        self._wm = None  # RAM: the retained watermark comes again with the subscription
        self.client = c = MQTTClient(
            self.dev,
            broker["host"],
            broker["port"],
            broker["user"],
            broker["password"],
            broker["keepalive"],
            ssl=self._ssl,
            will=(self.topic_status, will(self.dev), 1, True),
            max_inflight=cfg["max_inflight"],
            backoff_min_ms=broker["backoff_min_ms"],
            backoff_max_ms=broker["backoff_max_ms"],
            timeout_ms=broker["timeout_ms"],
            on_connect=self._on_connect,
            on_ack=self._on_ack,
            on_message=self._on_message,
            log=self._log,
            on_refused=self._on_refused,
        )
        if cfg["config_topic"]:
            await c.subscribe(self.topic_config, 1)
        await c.subscribe(self.topic_durable, 1)
        c.set_link(self._link and self._net_ok)
        c.start()
        self.powered = True
        self._tasks = [
            asyncio.create_task(self._sampler()),
            asyncio.create_task(self._publisher()),
            asyncio.create_task(self._status_loop()),
        ]

    def _power_off(self):
        """Sudden death: no DISCONNECT, RAM (outbox, counters since boot) lost."""
        self.powered = False
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        self.client.abort()
        self.lost += self.outbox_len
        self._dropped_before += self.outbox.dropped
        self.outbox = None
        self._sent = self._acked_n = self._resend_pos = self._resend_end = 0

    def _set_net(self, up):
        self._net_ok = up
        self._apply_link()

    def _apply_link(self):
        if self.powered:
            self.client.set_link(self._link and self._net_ok)

    async def _events(self, events):
        # Turn (at_s, kind, for_s) into start/end edges; overlapping windows nest.
        edges = []
        for at_s, kind, for_s in events:
            edges.append((at_s, kind, 1))
            if for_s is not None:
                edges.append((at_s + for_s, kind, -1))
        edges.sort(key=lambda e: e[0])
        depth = {"power": 0, "network": 0}
        for at_s, kind, d in edges:
            delay = int(at_s * 1000) - clock.ticks_diff(clock.ticks_ms(), self._t0)
            if delay > 0:
                await clock.sleep_ms(delay)
            before = depth[kind]
            depth[kind] = before + d
            if kind == "power":
                if before == 0 and self.powered:
                    self._say("power off (scenario)")
                    self._power_off()
                elif depth[kind] == 0 and not self.powered:
                    self._say("power on (scenario)")
                    await self._power_on()
            else:
                self._set_net(depth[kind] == 0)

    async def _watch_link(self):
        # A board's Wi-Fi comes and goes; the client must know (mqtt_as does the same).
        while True:
            up = bool(self.board.link_up())
            if up != self._link:
                self._link = up
                self._apply_link()
            await clock.sleep_ms(1000)

    def _say(self, msg):
        if self._log is not None:
            self._log("%s: %s" % (self.dev, msg))

    # -- tasks --------------------------------------------------------------------------

    async def _sampler(self):
        t0 = self._t0
        ticks_ms, ticks_diff, sleep_ms = clock.ticks_ms, clock.ticks_diff, clock.sleep_ms
        if self.cfg["phase_ms"]:
            await sleep_ms(int(self.cfg["phase_ms"]))
        due = ticks_diff(ticks_ms(), t0)  # ms since start at which the next reading is due
        while True:
            self._sample(due)
            due += self._period_ms
            delay = due - ticks_diff(ticks_ms(), t0)
            if delay >= 1:
                await sleep_ms(int(delay))
            else:
                if delay < -1000:
                    # Over a second late (stalled loop): readings not taken are not made
                    # up in a burst; the gap shows as time, not as missing seq.
                    due -= delay
                await sleep_ms(0)

    def _sample(self, due_ms):
        """Take the reading that was due at ``due_ms`` (ms since start). When the loop runs
        late it is stamped with its due time, as a sensor FIFO sample would be: timestamps
        stay one period apart, and within a device they strictly increase."""
        v = self.sensors.sample(due_ms / 1000)
        late = clock.ticks_diff(clock.ticks_ms(), self._t0) - due_ms  # read next to now()
        ts, tq = clock.now()
        if late > 0:
            ts = max(0, ts - int(late))
        if tq == self._last_tq and ts <= self._last_ts:
            ts = self._last_ts + 1  # the wall clock stepped back or we were descheduled
        self._last_ts = ts
        self._last_tq = tq
        b = self.board
        ob = self.outbox
        assert ob is not None  # the sampler runs only while powered
        low = ob.seq(0) if len(ob) else self.seq
        payload = self._enc.reading(self.seq, ts, tq, v, b.batt(), b.rssi(), low)
        # Full: the oldest reading only waiting for the watermark goes first (the broker
        # acknowledged it); else the oldest not in flight.
        waiting = self._acked_n
        if ob.push(payload, 0 if waiting else self._sent, self.seq) and waiting:
            self._shift(1)
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self._more.set()

    async def _publisher(self):
        ob = self.outbox
        assert ob is not None  # the publisher runs only while powered
        client = self.client
        t = self.topic_vitals
        try:
            while True:
                self._check_resend()
                if self._resend_pos < self._resend_end:
                    item = ob.peek(self._resend_pos)
                    self._resend_pos += 1
                    self.resent += 1
                    # No tag: its PUBACK releases nothing; only the watermark does.
                    await client.publish(t, item, False, 1)
                    continue
                if self._sent >= len(ob):
                    self._more.clear()
                    try:
                        # Wake once a second: the resend timer runs here.
                        await asyncio.wait_for(self._more.wait(), 1)
                    except asyncio.TimeoutError:
                        pass
                    continue
                item = ob.peek(self._sent)
                self._sent += 1  # protected from overflow drops from here on
                await client.publish(t, item, False, 1, True)
        except MQTTError:
            pass  # client closed: power off or stop()

    def _check_resend(self):
        if self._acked_n and self._resend_pos >= self._resend_end:
            now = clock.ticks_ms()
            if clock.ticks_diff(now, self._wm_moved_ms) >= self._resend_ms:
                self._resend_pos, self._resend_end = 0, self._acked_n
                self._wm_moved_ms = now
                self._resend_ms = min(self._resend_ms * 2, RESEND_MAX_MS)

    def _shift(self, n):
        # n readings left the head of the outbox from the PUBACKed-and-waiting part.
        self._acked_n -= n
        self._sent -= n
        self._resend_pos = max(0, self._resend_pos - n)
        self._resend_end = max(0, self._resend_end - n)

    def _release(self):
        """Let go of the PUBACKed readings the watermark covers (oldest first)."""
        ob, w, n = self.outbox, self._wm, 0
        assert ob is not None and w is not None
        while self._acked_n and (w - ob.seq(0)) & 0xFFFFFFFF < 0x80000000:
            ob.pop()
            self._shift(1)
            self.acked += 1
            n += 1
        if n:
            self._wm_moved_ms = clock.ticks_ms()
            self._resend_ms = RESEND_FIRST_MS
        if not self.outbox_len:
            self._drained.set()

    def _on_watermark(self, payload):
        data = json.loads(payload)
        seq = data.get("seq")
        if data.get("dev") != self.dev or isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 0xFFFFFFFF:
            raise ValueError("not this device's watermark")
        self._wm = seq
        if self.outbox is None:
            return
        self._release()
        top = data.get("top")
        if (isinstance(top, int) and (top - seq) & 0xFFFFFFFF < 0x80000000 and top != seq and self._acked_n
                and self._resend_pos >= self._resend_end
                and (self._gap_resend_ms is None
                     or clock.ticks_diff(clock.ticks_ms(), self._gap_resend_ms) >= GAP_RESEND_MS)):
            # The gateway has later readings than the watermark: ours after it went missing
            # on the way (a broker forgot them). Send them again now, not after the timeout.
            self._gap_resend_ms = clock.ticks_ms()
            self._resend_pos, self._resend_end = 0, self._acked_n

    def _on_ack(self, tag):
        # Called by the client in publish order, so the acknowledged reading is the first
        # in flight: the head, or the first after those waiting for the watermark.
        if self._wm is None:
            self.outbox.pop()
            self._sent -= 1
            self.acked += 1
            if not self.outbox_len:
                self._drained.set()
            return
        if not self._acked_n:
            self._wm_moved_ms = clock.ticks_ms()  # the wait for the watermark starts
        self._acked_n += 1
        self._release()

    def _on_refused(self, tag, why):
        # In publish order, like _on_ack: the first in flight is the refused reading; it is
        # not retried.
        self.outbox.remove(self._acked_n)
        self._sent -= 1
        self.refused += 1
        self._say("reading refused by the broker, dropped: %s" % why)
        if not self.outbox_len:
            self._drained.set()

    def _on_connect(self, client):
        if self._acked_n:
            # A new connection (perhaps a restarted broker that forgot what it had
            # acknowledged): send again what no watermark covers yet, in order.
            self._resend_pos, self._resend_end = 0, self._acked_n
        if not self._stopping:
            self._status_ev.set()

    def _on_message(self, topic_, payload, retained):
        if topic_ == self.topic_durable:
            try:
                self._on_watermark(payload)
            except Exception as e:  # a bad watermark must not stop the device
                self._say("watermark ignored: %r" % (e,))
            return
        try:
            settings = json.loads(payload)
            rate = settings.get("rate_hz")
            if rate is not None:
                if isinstance(rate, bool) or not 0 < rate <= MAX_RATE_HZ:
                    raise ValueError("rate_hz out of range")
                self._period_ms = 1000 / rate
            st = settings.get("status_s")
            if st is not None:
                self._status_ms = int(st * 1000)
            self._say("config applied: %r" % (settings,))
        except Exception as e:  # a bad config message must not stop the device
            self._say("config ignored: %r" % (e,))

    def status_payload(self):
        up = clock.ticks_diff(clock.ticks_ms(), self._boot_ms) // 1000
        b = self.board
        c = self.client
        return status(self.dev, VERSION, b.name, up, self.outbox_len, self.outbox.dropped, b.batt(), b.rssi(),
                      c.msgs_refused, c.last_refusal)

    async def _status_loop(self):
        client = self.client
        try:
            while True:
                try:
                    await asyncio.wait_for(self._status_ev.wait(), self._status_ms / 1000)
                except asyncio.TimeoutError:
                    pass
                self._status_ev.clear()
                if client.isconnected():
                    await client.publish(self.topic_status, self.status_payload(), True, 1)
        except MQTTError:
            pass
