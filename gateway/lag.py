"""Ingest lag per ward: how late readings reach the gateway's alarm engine.

A reading from a device with a synced clock (``tq`` = 1) carries when it was measured; the
gateway's receipt time minus that is its lag. Overload (more readings than the gateway can
take, a host too busy, a broker backlog) makes every device's lag grow, and with it the
delay of every alarm. Per ward, the lag is the median over its devices of each device's
latest lag, counting devices heard within ``horizon_ms``: one device replaying its outbox
after an outage (old readings, honestly late) does not move the median of a ward.

Pure: time is passed in. Who calls it: ``ingest.MqttIngest`` (``observe``, per stored
reading) and the service's 1 s loop (``lags``: ``/healthz``, the ``gateway`` measurement
and the ward's ``alarms_delayed`` alarm).
"""

from __future__ import annotations

import statistics


class LagMeter:
    def __init__(self, horizon_ms: int = 30_000):
        self.horizon_ms = horizon_ms
        # ward -> device -> (latest lag ms, when observed (gateway epoch ms), simulated)
        self._wards: dict[str, dict[str, tuple[int, int, bool]]] = {}

    def observe(self, ward: str, device: str, lag_ms: int, simulated: bool, now_ms: int) -> None:
        """One stored reading with a synced clock: ``lag_ms`` = receipt minus ``ts``."""
        devices = self._wards.get(ward)
        if devices is None:
            devices = self._wards[ward] = {}
        devices[device] = (lag_ms, now_ms, simulated)

    def lags(self, now_ms: int) -> dict[str, tuple[int, bool]]:
        """Per ward with devices heard within the horizon: (median lag ms, all simulated).

        Devices silent for longer are forgotten (the device-offline alarm covers them)."""
        out: dict[str, tuple[int, bool]] = {}
        for ward, devices in list(self._wards.items()):
            for device in [d for d, (_, seen, _) in devices.items() if now_ms - seen > self.horizon_ms]:
                del devices[device]
            if not devices:
                del self._wards[ward]
                continue
            lag = statistics.median_low(lag for lag, _, _ in devices.values())
            out[ward] = (lag, all(sim for _, _, sim in devices.values()))
        return out
