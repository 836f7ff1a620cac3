"""Board entry point, flashed as /main.py next to /lib/bedside/ and /config.json.

It loads the config, picks the board profile (``bedside.board``) and the sensors (the
MAX30102 and a MAX30205 or DS18B20 through ``bedside.pulseox``, or simulated vitals while
``"sim": true``), and runs, next to the app:

- Wi-Fi: associate, and re-associate with capped exponential backoff and jitter;
- NTP: set the clock once the link is up (readings carry ``tq=0`` until then), then twice a day;
- seq: kept across reboots in ``seq.a``/``seq.b`` by block reservations (``bedside.seqstore``);
- watchdog: fed once a second only while the sampler and the network make progress
  (``bedside.heartbeat``); a wedged board resets itself;
- status LED: on while connected to the broker, blinking once a second while not, flashing
  fast while the broker refuses the device for good (bad credentials, not authorised).

On the host, ``wardsim.install_stubs()`` supplies ``machine`` and ``network``.
"""

import json

CONFIG = "/config.json"
SEQ_FILE = "seq"  # relative: a board runs main.py with / as its working directory


def load_config(path=CONFIG):
    with open(path) as f:
        return json.load(f)


def device_id(board):
    """A device id from the chip's unique id, for boards provisioned without one."""
    return "ww-" + board.unique_id()[-10:]


async def _wifi(board, wifi):
    import asyncio

    from bedside.mqtt import getrandbits

    delay = 1
    while True:
        if board.link_up():
            delay = 1
            await asyncio.sleep(2)
            continue
        try:
            board.connect_wifi(wifi["ssid"], wifi.get("key"))
        except OSError as e:
            print("wifi:", repr(e))
        # Give the association time, then back off: a whole ward rejoining at once after an
        # access-point restart must not retry in lockstep.
        await asyncio.sleep(delay + getrandbits(10) / 1024)
        delay = min(delay * 2, 60)


async def _sync_time(board):
    import asyncio

    from bedside import clock

    while True:
        ok = False
        if board.link_up is None or board.link_up():
            try:
                ok = board.sync_time(clock)
            except Exception as e:
                print("ntp:", repr(e))
        await asyncio.sleep(43200 if ok else 30)


# Status LED steps for one second: (on, ms), ...
LED_CONNECTED = ((True, 1000),)
LED_REFUSED = ((True, 100), (False, 100)) * 5  # fast: someone must fix the credentials
LED_OFF = ((False, 1000),)
LED_ON = ((True, 1000),)


def led_steps(app, second):
    """The LED's steps for the ``second``-th second of ``_supervise``: on when connected,
    fast flashing while the broker refuses the device for good (``client.refusing``), else
    on and off on alternate seconds."""
    c = app.client
    if app.connected():
        return LED_CONNECTED
    if c is not None and c.refusing:
        return LED_REFUSED
    return LED_ON if second & 1 else LED_OFF


def _progress(app):
    """Counters that move while the network side works: connects, failed attempts, acks."""
    c = app.client
    if c is None:
        return app.acked
    return app.acked + c.connects + c.failures


async def _supervise(board, app, store, margin):
    """Once a second: feed the watchdog if healthy, reserve seq blocks, drive the LED."""
    from bedside.clock import sleep_ms, ticks_ms
    from bedside.heartbeat import Heartbeats

    period_ms = int(1000 / app.cfg["rate_hz"])
    # The network may legitimately be silent through a backoff (<= backoff_max) and a
    # keepalive; anything far longer means the client is wedged.
    beats = Heartbeats({"sampler": max(5000, 5 * period_ms), "network": 120000})
    last_seq = last_net = None
    second = 0
    board.watchdog()
    while True:
        now = ticks_ms()
        if app.seq != last_seq:
            last_seq = app.seq
            beats.beat("sampler", now)
        net = _progress(app)
        if net != last_net or app.connected():
            last_net = net
            beats.beat("network", now)
        if beats.healthy(now):
            board.feed()
        else:
            print("watchdog: not fed, stale:", beats.stale(now))
        if store is not None:
            store.note((app.seq - 1) & 0xFFFFFFFF, margin)
        second += 1
        for on, ms in led_steps(app, second):
            board.led(on)
            await sleep_ms(ms)


def sensors_for(board, cfg):
    """The board's real sensors, or None for simulated vitals. Only ``"sim": true`` simulates:
    a config without ``sim`` runs the real sensors, so no ward sees invented numbers by
    accident. ``thermometer``: "max30205" (same I2C bus), "ds18b20" (OneWire
    on the profile's pin) or "none". A sensor that does not answer reads as probe "fault"
    with null values; it never produces a number."""
    if cfg.get("sim", False):
        return None
    from bedside.drivers import DriverError
    from bedside.drivers.max30102 import MAX30102
    from bedside.pulseox import Ds18b20Poller, Sensors

    i2c = board.i2c()
    kind = cfg.get("thermometer", "max30205")
    thermometer = None
    try:
        if kind == "max30205":
            from bedside.drivers.max30205 import MAX30205

            thermometer = MAX30205(i2c)
            thermometer.init()
        elif kind == "ds18b20":
            import onewire
            from bedside.drivers.ds18b20 import DS18B20
            from machine import Pin

            ds = DS18B20(onewire.OneWire(Pin(board.pins["onewire"])))
            ds.init()
            thermometer = Ds18b20Poller(ds)
    except DriverError as e:
        print("thermometer:", repr(e))  # temperature stays null; SpO2 and pulse go on
    return Sensors(MAX30102(i2c, swap_leds=cfg.get("swap_red_ir", False)), thermometer)


async def _main(cfg):
    import asyncio

    from bedside import board as board_mod
    from bedside.app import App
    from bedside.seqstore import SeqStore

    board = board_mod.profile(cfg)
    if "dev" not in cfg and hasattr(board, "unique_id"):
        cfg["dev"] = device_id(board)
    store = None
    if board.name != "host":
        store = SeqStore(cfg.get("seq_file", SEQ_FILE), block=cfg.get("seq_block", 3600))
        cfg["seq"] = store.start()
    wifi = cfg.get("wifi")
    if wifi and hasattr(board, "connect_wifi"):
        asyncio.create_task(_wifi(board, wifi))
    if hasattr(board, "sync_time"):
        asyncio.create_task(_sync_time(board))
    app = App(cfg, sensors=sensors_for(board, cfg), board=board, log=print)
    if hasattr(board, "watchdog"):
        # Reserve a new block once fewer than ~5 s of readings are left in this one.
        margin = min(max(10, int(cfg.get("rate_hz", 1) * 5)), cfg.get("seq_block", 3600) // 2)
        asyncio.create_task(_supervise(board, app, store, margin))
    await app.run()


def plan(cfg):
    """What this board will do with ``cfg``, as lines of text; raises ValueError naming the
    key when ``bedside.app.check_config`` refuses the config. Pure: touches no hardware, so
    it runs anywhere MicroPython does (provisioning runs it on the board after copying)."""
    from bedside import VERSION
    from bedside.app import check_config
    from bedside.reading import topic

    c = check_config(cfg)
    b = c["broker"]
    wifi = c.get("wifi") or {}
    if c["sim"]:
        sensors = "SIMULATED vitals (sim: true), scenario %s, seed %s" % (c["scenario"], c["seed"])
    else:
        sensors = "real sensors: MAX30102 + %s" % (c.get("thermometer", "max30205"),)
    return [
        "firmware %s, board %s" % (VERSION, c["board"]),
        "device %s in ward %s" % (c["dev"], c["ward"]),
        "wifi %s" % (wifi.get("ssid") or "(none: link managed elsewhere)",),
        "broker %s:%d %s as %s%s" % (b["host"], b["port"], "TLS" if b["tls"] else "PLAIN", b["user"],
                                     ", CA " + b["cafile"] if b["cafile"] else ""),
        "publish %s every %s s" % (topic(c["prefix"], c["ward"], c["dev"], "vitals"), 1 / c["rate_hz"]),
        sensors,
    ]


def check(path=CONFIG):
    """Config-check mode of the boot path: load ``path``, print the plan line by line and
    ``check: ok``, or ``check: FAILED <reason>``; returns True when the config is usable.
    Who calls it: ``main()`` on every boot (the serial log shows what the board does) and
    ``wardwatch provision device`` after flashing (through mpremote)."""
    try:
        lines = plan(load_config(path))
    except (OSError, ValueError) as e:
        print("check: FAILED", repr(e))
        return False
    for line in lines:
        print("check:", line)
    print("check: ok")
    return True


def main(path=CONFIG):
    import asyncio

    check(path)
    cfg = load_config(path)
    try:
        asyncio.run(_main(cfg))
    except KeyboardInterrupt:
        raise
    except Exception as e:
        # A crashed board helps nobody: report and reboot (the outbox is lost; seq is kept
        # by the seq store, so no number is reused).
        print("fatal:", repr(e))
        import machine
        import time

        time.sleep(5)
        machine.reset()


if __name__ == "__main__":
    main()
