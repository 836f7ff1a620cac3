"""The clock compat module on CPython: host time counts as synced; a board sets it."""

import time

from bedside import clock


def test_ticks_and_uptime_are_monotonic():
    a = clock.ticks_ms()
    up = clock.uptime_ms()
    assert clock.ticks_diff(clock.ticks_add(a, 250), a) == 250
    assert clock.uptime_ms() >= up >= 0


def test_host_time_is_synced():
    ts, tq = clock.now()
    assert tq == 1 and abs(ts - time.time() * 1000) < 1000
    assert clock.synced()


def test_set_epoch_ms_overrides(monkeypatch):
    monkeypatch.setattr(clock, "_sync_epoch", None)
    monkeypatch.setattr(clock, "_host_epoch_ms", None)  # as on a board before NTP
    ts, tq = clock.now()
    assert tq == 0 and 0 <= ts <= clock.uptime_ms()
    clock.set_epoch_ms(1_000_000_000_000)
    ts, tq = clock.now()
    assert tq == 1 and 1_000_000_000_000 <= ts < 1_000_000_010_000
