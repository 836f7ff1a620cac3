"""The app with no broker reachable: it keeps sampling into the outbox; timestamps stay one
period apart even when the event loop stalls; config errors name the key."""

from __future__ import annotations

import json
import time

import pytest

from bedside.app import App, check_config
from provisioning.stack.services import free_port

from .conftest import wait


def offline_cfg(**over):
    cfg = {"dev": "dev-01", "ward": "w1", "rate_hz": 50, "sim": True,
           "broker": {"host": "127.0.0.1", "port": free_port(), "backoff_min_ms": 50, "backoff_max_ms": 100}}
    cfg.update(over)
    return cfg


def test_a_stalled_loop_catches_up_with_timestamps_one_period_apart(aloop):
    app = App(offline_cfg())
    fut = aloop.spawn(app.run())
    wait(lambda: app.outbox_len >= 5, 5, "first readings")
    aloop.call(time.sleep, 0.3)  # block the device's event loop for 300 ms (15 periods)
    wait(lambda: app.outbox_len >= 40, 5, "more readings")
    aloop.run(app.stop(0))
    fut.result(10)
    docs = [json.loads(app.outbox.peek(i)) for i in range(app.outbox_len)]
    assert [d["seq"] for d in docs] == list(range(len(docs)))
    ts = [d["ts"] for d in docs]
    steps = [b - a for a, b in zip(ts, ts[1:])]
    assert all(s > 0 for s in steps), steps  # strictly increasing within a device
    # No catch-up burst after the stall (that would be ~15 steps of 0-1 ms) ...
    assert sum(s < 5 for s in steps) <= 1, steps
    # ... and the readings span their due times, 20 ms apart. A descheduled vCPU can move
    # one timestamp by a few ms, which only the endpoints can carry into the span.
    assert abs((ts[-1] - ts[0]) - 20 * (len(ts) - 1)) <= 10, steps
    assert sorted(steps)[len(steps) // 2] == 20
    assert app.client.failures >= 1 and app.stats()["acked"] == 0


CONFIG_ERRORS = [
    ({"dev": "Bad"}, "dev"),
    ({"ward": ""}, "ward"),
    ({"broker": {}}, "broker.host"),
    ({"rate_hz": 0}, "rate_hz"),
    ({"rate_hz": True}, "rate_hz"),
    ({"outbox_cap": 5}, "outbox_cap"),
    ({"max_inflight": 0}, "max_inflight"),
    ({"seq": -1}, "seq"),
    ({"board": "pc"}, "board"),
]


@pytest.mark.parametrize("over,key", CONFIG_ERRORS)
def test_config_errors_name_the_key(over, key):
    cfg = {"dev": "dev-01", "ward": "w1", "broker": {"host": "h"}}
    cfg.update(over)
    with pytest.raises(ValueError, match=key):
        check_config(cfg)


def test_config_defaults():
    cfg = check_config({"dev": "dev-01", "ward": "w1", "broker": {"host": "h", "tls": True}})
    assert cfg["broker"]["port"] == 8883 and cfg["broker"]["user"] == "dev-01"
    assert cfg["prefix"] == "wardwatch/v1" and cfg["outbox_cap"] == 300 and cfg["max_inflight"] == 8
    assert check_config({"dev": "dev-01", "ward": "w1", "broker": {"host": "h"}})["broker"]["port"] == 1883
