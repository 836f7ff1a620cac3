"""A device's clock cannot suppress or delay an alarm: three beds with SpO2 85, one with a
correct clock, one whose first reading is stamped 240 s ahead, one whose clock jumps an
hour back after its third reading, through the real broker and gateway. Each raises
spo2_low 15 s after its first reading arrived. A reading from 1970 that claims a synced
clock is rejected."""

from __future__ import annotations

import time

import pytest

from provisioning.stack.gateway_proc import GatewayProcess, write_registry
from provisioning.stack.services import wait_until

from .publisher import Publisher, reading
from .test_overload import Events

pytestmark = pytest.mark.services

# write_registry names devices sim-<ward>-NN for beds NN.
BEDS = {"01": "correct", "02": "first reading 240 s ahead", "03": "jumps back an hour after 3 readings"}


class AlarmEvents(Events):
    def raised(self, code: str, bed: str) -> list[dict]:
        with self.lock:
            return [e for e in self.items if e["code"] == code and e["event"] == "raised" and e["bed"] == bed]


def test_spo2_low_is_raised_on_time_whatever_the_devices_clock(stack, tmp_path):
    registry = write_registry(tmp_path / "devices.toml", "tm", 3)
    with GatewayProcess(stack, tmp_path / "gw", registry) as gw:
        for bed in BEDS:
            gw.cli("patients", "admit", "--ward", "tm", "--bed", bed, "--patient", f"MRN-{bed}", "--user", "nurse")
        events = AlarmEvents(stack, "wardwatch/v1/tm/alarms/events")
        pub = Publisher(stack)
        first_sent: dict[str, float] = {}
        for k in range(22):
            now = int(time.time() * 1000)
            for bed in BEDS:
                ts = {"01": now, "02": now + 240_000 if k == 0 else now, "03": now - (3_600_000 if k >= 3 else 0)}[bed]
                pub.publish(f"wardwatch/v1/tm/sim-tm-{bed}/vitals", reading(f"sim-tm-{bed}", k, ts=ts, spo2=85))
                first_sent.setdefault(bed, time.time())
            time.sleep(max(0.0, now / 1000 + 1 - time.time()))
        for bed, case in BEDS.items():
            raised = wait_until(lambda: events.raised("spo2_low", bed), 10, f"spo2_low on bed {bed} ({case})")[0]
            delay_s = raised["at_ms"] / 1000 - first_sent[bed]
            assert 14.5 <= delay_s <= 17.5, (case, delay_s)
            assert raised["since_ms"] <= raised["at_ms"], case  # never a "since" in the future
        # The clock an hour behind is called wrong once it has been behind longer than a replay.
        # (Its first minute looks like a replay; this run lasts 22 s, so no clock_wrong yet.)
        assert not events.raised("clock_wrong", "01")
        # 1970 with a synced clock: rejected with its reason, not stored.
        pub.publish("wardwatch/v1/tm/sim-tm-01/vitals", reading("sim-tm-01", 1000, ts=0))
        wait_until(lambda: gw.health()["rejected"].get("stale_ts") == 1, 10, "the 1970 reading rejected")
        assert not stack.influx.rows("SELECT seq FROM vitals WHERE seq = 1000")
        events.close()
        pub.close()
