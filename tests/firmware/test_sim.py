"""The host simulator: arguments, credentials, scenario files, and whole runs against the
real broker (duration stop and SIGTERM stop, both flushing and writing the summary)."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys

import pytest

from bedside.simvitals import Patient
from provisioning.broker import save_credentials
from wardsim import scenariofile, sim

from .conftest import FIRMWARE, REPO, wait

SCENARIO_DIR = FIRMWARE / "wardsim" / "scenarios"
NAMED = ["stable", "desaturation", "tachycardia", "bradycardia", "fever", "probe_off", "power_off", "network_outage"]


def parse(*argv):
    p = argparse.ArgumentParser()
    sim.add_arguments(p)
    return p.parse_args(list(argv))


def test_defaults():
    a = parse("--ward", "w1", "--password-env", "X")
    assert (a.beds, a.rate, a.broker, a.prefix, a.duration, a.outbox) == (12, 1.0, ("127.0.0.1", 1883), "wardwatch/v1", None, 300)


@pytest.mark.parametrize("argv", [
    [],  # --ward is required
    ["--ward", "W1"],
    ["--ward", "-w"],
    ["--ward", "w" * 33],
    ["--ward", "w1", "--broker", "localhost"],
    ["--ward", "w1", "--broker", "h:0"],
    ["--ward", "w1", "--beds", "0"],
    ["--ward", "w1", "--rate", "-1"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        parse(*argv)
    assert e.value.code == 2


def test_configs_device_ids_credentials_and_seeds(tmp_path):
    creds = tmp_path / "creds"
    creds.write_text("# ward w1\n" + "".join(f"sim-w1-{n:02d}:pw:{n}\n" for n in range(1, 4)) + "\n")
    cfgs = sim.build_configs(parse("--ward", "w1", "--beds", "3", "--credentials", str(creds), "--seed", "10", "--rate", "4"))
    assert [c["dev"] for c in cfgs] == ["sim-w1-01", "sim-w1-02", "sim-w1-03"]
    assert [c["broker"]["password"] for c in cfgs] == ["pw:1", "pw:2", "pw:3"]  # split at the first ':'
    assert all(c["broker"]["user"] == c["dev"] and c["sim"] and c["rate_hz"] == 4 for c in cfgs)
    assert [c["seed"] for c in cfgs] == [11, 12, 13]
    assert all(0 <= c["phase_ms"] < 250 for c in cfgs)
    assert sim.device_id("w1", 112) == "sim-w1-112"


def test_config_errors(tmp_path, monkeypatch):
    creds = tmp_path / "creds"
    creds.write_text("sim-w1-01:a\n")
    with pytest.raises(sim.SimError, match="sim-w1-02"):
        sim.build_configs(parse("--ward", "w1", "--beds", "2", "--credentials", str(creds)))
    with pytest.raises(sim.SimError, match="--credentials"):
        sim.build_configs(parse("--ward", "w1"))
    with pytest.raises(sim.SimError, match="not set"):
        sim.build_configs(parse("--ward", "w1", "--password-env", "WARDSIM_TEST_UNSET"))
    monkeypatch.setenv("WARDSIM_PW", "shared")
    cfgs = sim.build_configs(parse("--ward", "w1", "--beds", "2", "--password-env", "WARDSIM_PW"))
    assert {c["broker"]["password"] for c in cfgs} == {"shared"}
    with pytest.raises(sim.SimError, match="shorter --ward"):
        sim.build_configs(parse("--ward", "a" * 26, "--password-env", "WARDSIM_PW"))
    (tmp_path / "bad.creds").write_text("no-colon-here\n")
    with pytest.raises(sim.SimError, match="bad.creds:1"):
        sim.build_configs(parse("--ward", "w1", "--credentials", str(tmp_path / "bad.creds")))


def test_every_scenario_has_an_example_file_that_loads():
    for name in NAMED + ["demo"]:
        plan = scenariofile.load(SCENARIO_DIR / f"{name}.toml")
        for bed in range(1, 13):
            Patient(bed, plan.for_bed(bed)[0]).sample(150)


@pytest.mark.parametrize("name", NAMED[1:])
def test_example_files_match_the_named_scenarios(name):
    """The example files spell out the phases of bedside.simvitals.SCENARIOS."""
    spec, _ = scenariofile.load(SCENARIO_DIR / f"{name}.toml").for_bed(1)
    from bedside.simvitals import SCENARIOS

    assert spec["phases"] == SCENARIOS[name]


def test_demo_bed_3_deteriorates_the_others_stay_stable():
    plan = scenariofile.load(SCENARIO_DIR / "demo.toml")
    bed3 = Patient(3, plan.for_bed(3)[0])
    start, end = bed3.sample(10), bed3.sample(150)
    assert end["spo2"] < 88 < start["spo2"]
    assert end["hr"] > 115 > start["hr"]
    assert end["temp"] > 38.5 > start["temp"]
    for bed in (1, 2, 4, 12):
        p = Patient(bed, plan.for_bed(bed)[0])
        assert abs(p.sample(150)["spo2"] - p.baseline["spo2"]) < 2


BAD_FILES = [
    ('colour = "red"', "unknown top-level"),
    ('default = "nope"', "unknown scenario"),
    ("[[bed]]\nscenario = \"fever\"", "beds must be"),
    ("[[bed]]\nbeds = [0]", "beds must be"),
    ("[[bed]]\nbeds = [1]\n[[bed]]\nbeds = [1]", "bed 1 is already"),
    ("[[bed]]\nbeds = [1]\nsped = 3", "unknown key"),
    ("[[bed]]\nbeds = [1]\nseed = 1.5", "seed"),
    ("[[bed]]\nbeds = [1]\n[[bed.phase]]\nramp_s = 3", "phase 1: at_s"),
    ("[[bed]]\nbeds = [1]\n[[bed.phase]]\nat_s = 1\nspo2 = 120", "spo2"),
    ("[[bed", "Expected"),
]


@pytest.mark.parametrize("text,message", BAD_FILES)
def test_bad_scenario_files_name_file_and_problem(tmp_path, text, message):
    f = tmp_path / "s.toml"
    f.write_text(text)
    with pytest.raises(scenariofile.ScenarioError, match=message) as e:
        scenariofile.load(f)
    assert str(f) in str(e.value)


def test_bad_scenario_file_exits_2(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text('default = "nope"')
    assert sim.run(parse("--ward", "w1", "--password-env", "PATH", "--scenario", str(f))) == 2
    assert "unknown scenario" in capsys.readouterr().err


def _creds(broker, tmp_path, beds):
    users = {sim.device_id("w1", n): f"pw-{n}" for n in range(1, beds + 1)}
    broker.mosquitto.add_users(users)
    broker.restart()
    path = tmp_path / "creds"
    save_credentials(path, users)
    return path


def test_run_for_a_duration_flushes_and_writes_the_summary(broker, tmp_path, reading_schema):
    creds = _creds(broker, tmp_path, 4)
    scen = tmp_path / "s.toml"
    scen.write_text('[[bed]]\nbeds = [2]\nscenario = "probe_off"\nstart_s = -30\n')
    with broker.subscriber("wardwatch/v1/w1/+/vitals") as sub:
        args = parse("--ward", "w1", "--beds", "4", "--rate", "10", "--broker", f"127.0.0.1:{broker.port}",
                     "--credentials", str(creds), "--duration", "1.5", "--summary", str(tmp_path / "sum.json"),
                     "--scenario", str(scen))
        assert sim.run(args) == 0
        summary = json.loads((tmp_path / "sum.json").read_text())
        assert sorted(summary) == [f"sim-w1-0{n}" for n in range(1, 5)]
        for dev, s in summary.items():
            assert s["outbox"] == 0 and s["dropped"] == 0 and s["acked"] == s["seq_next"] >= 12
        total = sum(s["seq_next"] for s in summary.values())
        wait(lambda: len(sub.seqs()) >= total, 10, "every reading")
        docs = sub.payloads("/vitals")
        assert len(docs) == total
        for d in docs:
            reading_schema.validate(d)
        assert all(d["sim"] for d in docs)
        assert {d["probe"] for d in docs if d["dev"] == "sim-w1-02"} == {"off"}
        assert {d["probe"] for d in docs if d["dev"] != "sim-w1-02"} == {"ok"}


def test_sigterm_stops_cleanly_with_exit_0(broker, tmp_path):
    creds = _creds(broker, tmp_path, 3)
    summary = tmp_path / "sum.json"
    with broker.subscriber("wardwatch/v1/w1/#") as sub:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wardsim.sim", "--ward", "w1", "--beds", "3", "--rate", "20", "--broker",
             f"127.0.0.1:{broker.port}", "--credentials", str(creds), "--summary", str(summary), "-v"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            wait(lambda: len({d["dev"] for d in sub.payloads("/vitals")}) == 3, 15, "readings from all 3 beds")
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, out
        assert out.count(": connected to") == 3 and "stopping" in out
        stats = json.loads(summary.read_text())
        assert all(s["outbox"] == 0 and s["acked"] == s["seq_next"] for s in stats.values()), stats
        expected = {(dev, n) for dev, s in stats.items() for n in range(s["seq_next"])}
        got = lambda: {(d["dev"], d["seq"]) for d in sub.payloads("/vitals")}
        try:
            wait(lambda: got() >= expected, 10, "all readings")
        except TimeoutError:
            raise AssertionError(f"missing {sorted(expected - got())}, extra {sorted(got() - expected)}\n{out}") from None
        # a clean stop: every device says offline once, last, in its retained status
        wait(lambda: [s["state"] for s in sub.payloads("/status")].count("offline") == len(stats), 10, "offline")
        last = {}
        for s in sub.payloads("/status"):
            last[s["dev"]] = s["state"]
        assert last == {dev: "offline" for dev in stats}


def test_devices_that_cannot_connect_are_reported_without_verbose(broker, tmp_path, caplog):
    import asyncio
    import logging

    creds = tmp_path / "creds"
    creds.write_text("sim-w1-01:wrong\n")
    args = parse("--ward", "w1", "--beds", "1", "--broker", f"127.0.0.1:{broker.port}", "--credentials", str(creds))
    cfgs = sim.build_configs(args)
    cfgs[0]["broker"].update(backoff_min_ms=50, backoff_max_ms=100)

    async def warned():
        while "devices not connected" not in caplog.text:
            await asyncio.sleep(0.05)

    async def main():
        watch = asyncio.create_task(sim._watch_connections(apps, every_s=0.3))
        task = asyncio.create_task(apps[0].run())
        try:
            await asyncio.wait_for(warned(), 10)
        finally:
            watch.cancel()
            await apps[0].stop(0.1)
            await task

    from bedside.app import App

    apps = [App(cfgs[0])]
    with caplog.at_level(logging.WARNING, logger="wardsim"):
        asyncio.run(main())
    assert "1 of 1 devices not connected (sim-w1-01: connection refused: not authorized)" in caplog.text
