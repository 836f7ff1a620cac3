"""firmware/main.py, the board entry, boots on CPython with the machine/network stand-ins:
it reads a config.json, takes the Wi-Fi board profile and publishes to the real broker."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import DEVICES, FIRMWARE, REPO, WARD, wait

BOOT = (
    "import sys, wardsim; wardsim.install_stubs(); "
    "sys.path.insert(0, sys.argv[2]); import main; main.main(sys.argv[1])"
)


def test_main_py_boots_from_config_json(broker, tmp_path, status_schema):
    cfg = {
        "dev": "dev-01", "ward": WARD, "board": "esp32", "rate_hz": 10, "sim": True, "seq_file": str(tmp_path / "seq"),
        "wifi": {"ssid": "ward-net", "key": "k"},
        "broker": {"host": "127.0.0.1", "port": broker.port, "password": DEVICES["dev-01"]},
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with broker.subscriber(f"wardwatch/v1/{WARD}/dev-01/#") as sub:
        proc = subprocess.Popen([sys.executable, "-c", BOOT, str(tmp_path / "config.json"), str(FIRMWARE)],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait(lambda: sub.payloads("/status") and len(sub.seqs()) >= 5, 15, "status and readings from main.py")
        finally:
            proc.kill()  # like pulling the plug
            out, _ = proc.communicate(timeout=10)
        status = sub.payloads("/status")[0]
        status_schema.validate(status)
        assert status["board"] == "esp32" and status["rssi"] == -55  # the WLAN stand-in
        assert sub.seqs()[:5] == [0, 1, 2, 3, 4]
        assert "connected to" in out
        wait(lambda: sub.payloads("/status")[-1]["state"] == "offline", 10, "last will after the kill")


def test_seq_continues_across_reboots_without_reuse(broker, tmp_path):
    cfg = {
        "dev": "dev-02", "ward": WARD, "board": "rp2", "rate_hz": 20, "sim": True, "seq_file": str(tmp_path / "seq"),
        "seq_block": 50, "wifi": {"ssid": "ward-net", "key": "k"},
        "broker": {"host": "127.0.0.1", "port": broker.port, "password": DEVICES["dev-02"]},
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    boots = []
    with broker.subscriber(f"wardwatch/v1/{WARD}/dev-02/vitals") as sub:
        for readings in (70, 30):
            before = len(sub.seqs())
            proc = subprocess.Popen([sys.executable, "-c", BOOT, str(tmp_path / "config.json"), str(FIRMWARE)],
                                    cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                wait(lambda: len(sub.seqs()) >= before + readings, 20, "readings")
            finally:
                proc.kill()  # a power cut: no clean stop, nothing saved at the end
                out, _ = proc.communicate(timeout=10)
            assert "watchdog: not fed" not in out, out
            boots.append(sub.seqs()[before:])
    first, second = boots
    assert first[:3] == [0, 1, 2] and first == sorted(first)
    # The second boot starts past every number the first could have used (at most one
    # block of 50 skipped per reboot), and counts on from there.
    assert max(first) < second[0] <= max(first) + 50 + 1 + 10
    assert second == list(range(second[0], second[0] + len(second)))


def test_a_board_without_its_sensors_publishes_fault_and_nulls_never_numbers(broker, tmp_path, reading_schema):
    cfg = {
        "dev": "dev-03", "ward": WARD, "board": "esp32", "rate_hz": 5, "sim": False,
        "seq_file": str(tmp_path / "seq"),
        "broker": {"host": "127.0.0.1", "port": broker.port, "password": DEVICES["dev-03"]},
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with broker.subscriber(f"wardwatch/v1/{WARD}/dev-03/vitals") as sub:
        proc = subprocess.Popen([sys.executable, "-c", BOOT, str(tmp_path / "config.json"), str(FIRMWARE)],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait(lambda: len(sub.seqs()) >= 5, 15, "readings from a board with an empty I2C bus")
        finally:
            proc.kill()
            out, _ = proc.communicate(timeout=10)
    readings = sub.payloads("/vitals")
    for doc in readings:
        reading_schema.validate(doc)
    assert {d["probe"] for d in readings} == {"fault"}
    assert all(d[k] is None for d in readings for k in ("hr", "spo2", "pi", "temp"))
    assert all(d["sim"] is False for d in readings)
    assert "thermometer:" in out  # the missing MAX30205 is reported once at boot


def _main_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("board_main", FIRMWARE / "main.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_status_led_flashes_fast_while_the_broker_refuses_the_device():
    """Issue 9 item 11: a device the broker refuses for good (bad credentials) cannot say so
    in a status; the LED shows it: fast flashing, unlike the slow blink of a device that is
    merely offline and the steady light of a connected one."""
    import asyncio
    import time
    from types import SimpleNamespace

    main = _main_module()
    changes = []
    board = SimpleNamespace(watchdog=lambda: None, feed=lambda: None,
                            led=lambda on: changes.append((time.monotonic(), bool(on))))

    def lit_changes(refusing, connected=False):
        client = SimpleNamespace(refusing=refusing, connects=0, failures=0)
        app = SimpleNamespace(cfg={"rate_hz": 1}, seq=0, acked=0, client=client, connected=lambda: connected)
        changes.clear()

        async def run():
            task = asyncio.create_task(main._supervise(board, app, None, 10))
            await asyncio.sleep(2.05)
            task.cancel()

        asyncio.run(run())
        states = [on for t, on in changes]
        return sum(1 for a, b in zip(states, states[1:]) if a != b)

    assert lit_changes(refusing=True) >= 15  # ~5 flashes a second
    assert lit_changes(refusing=False) <= 2  # on and off on alternate seconds
    assert lit_changes(refusing=False, connected=True) == 0


def _check(tmp_path, cfg) -> tuple[bool, list[str]]:
    """main.check() on a config file, in a fresh interpreter: (its result, its lines)."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    code = "import sys; sys.path.insert(0, sys.argv[2]); import main; print(main.check(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", code, str(path), str(FIRMWARE)], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    return out[-1] == "True", out[:-1]


def test_a_config_without_sim_means_real_sensors_and_the_check_says_so(tmp_path):
    from bedside.app import check_config

    assert check_config({"dev": "bed-01-a", "ward": "w1", "broker": {"host": "h"}})["sim"] is False
    ok, lines = _check(tmp_path, {"dev": "bed-01-a", "ward": "w1", "board": "esp32",
                                  "broker": {"host": "10.0.0.2", "tls": True, "cafile": "/ca.crt"},
                                  "wifi": {"ssid": "ward-net", "key": "k"}})
    assert ok
    assert lines == [
        "check: firmware 0.1.0, board esp32",
        "check: device bed-01-a in ward w1",
        "check: wifi ward-net",
        "check: broker 10.0.0.2:8883 TLS as bed-01-a, CA /ca.crt",
        "check: publish wardwatch/v1/w1/bed-01-a/vitals every 1.0 s",
        "check: real sensors: MAX30102 + max30205",
        "check: ok",
    ]
    ok, lines = _check(tmp_path, {"dev": "bed-01-a", "ward": "w1", "sim": True, "scenario": "desat", "seed": 4,
                                  "broker": {"host": "h"}})
    assert ok and "check: SIMULATED vitals (sim: true), scenario desat, seed 4" in lines


def test_the_check_names_the_bad_key_and_fails(tmp_path):
    ok, lines = _check(tmp_path, {"dev": "bed-01-a", "ward": "w1", "sim": "yes", "broker": {"host": "h"}})
    assert not ok and lines[-1].startswith("check: FAILED") and "sim: need true or false" in lines[-1]
    ok, lines = _check(tmp_path, {"ward": "w1", "broker": {"host": "h"}})
    assert not ok and "dev: need a device id" in lines[-1]
