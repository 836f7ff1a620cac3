"""Ingest lag per ward (gateway.lag), from tables: time passed in."""

from __future__ import annotations

from gateway.lag import LagMeter


def test_the_median_of_each_devices_latest_lag_per_ward():
    m = LagMeter(horizon_ms=30_000)
    for device, lag in (("a", 100), ("b", 300), ("c", 200)):
        m.observe("w1", device, lag, True, 1_000)
    m.observe("w1", "a", 150, True, 2_000)  # a device's latest lag counts, not its history
    m.observe("w2", "d", 9_000, False, 2_000)
    assert m.lags(2_000) == {"w1": (200, True), "w2": (9_000, False)}


def test_one_device_replaying_its_outbox_does_not_move_its_wards_lag():
    m = LagMeter()
    for device in ("a", "b", "c", "d"):
        m.observe("w1", device, 80, False, 1_000)
    m.observe("w1", "e", 45_000, False, 1_000)  # old readings after a network outage
    assert m.lags(1_000)["w1"][0] == 80


def test_devices_silent_past_the_horizon_are_forgotten():
    m = LagMeter(horizon_ms=30_000)
    m.observe("w1", "a", 9_000, False, 0)
    m.observe("w1", "b", 100, False, 20_000)
    assert m.lags(29_000) == {"w1": (100, False)}  # median_low of 100 and 9,000: the smaller
    assert m.lags(31_000) == {"w1": (100, False)}
    assert m.lags(51_000) == {}
