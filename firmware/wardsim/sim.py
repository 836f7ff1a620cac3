"""The WardWatch host simulator: a whole ward of bedside devices in one asyncio process.

Each bed runs its own copy of the firmware app (``bedside.app.App``: its own MQTT
connection, device id ``sim-<ward>-<NN>``, outbox and seq) with simulated sensors
(``bedside.simvitals``); every reading carries ``sim: true``. Scenarios come from a TOML
file (``wardsim.scenariofile``).

Entry points: ``add_arguments(parser)`` and ``run(args) -> exit code``, wired into the
``wardwatch sim`` command by ``gateway/cli/simulator.py``. ``python -m wardsim.sim`` works as well.
Exit codes: 0 after a clean stop (``--duration`` elapsed, SIGINT or SIGTERM: sampling
stops, outboxes flush for up to ``--flush-timeout`` s, devices send DISCONNECT), 2 for bad
arguments or files.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import signal
import sys
import time
from pathlib import Path

from bedside import reading
from bedside.app import App, tls_context
from bedside.board import HostBoard
from bedside.simvitals import Patient

from . import rawsim, scenariofile

log = logging.getLogger("wardsim")

WARD_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class SimError(Exception):
    pass


def device_id(ward: str, bed: int) -> str:
    """``sim-<ward>-<NN>``: NN is the 1-based bed number, at least 2 digits."""
    return "sim-%s-%02d" % (ward, bed)


def _ward(value: str) -> str:
    if not WARD_RE.match(value):
        raise argparse.ArgumentTypeError(f"ward must match [a-z0-9][a-z0-9-]{{0,31}}: {value!r}")
    return value


def _broker(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _positive(kind):
    def conv(value: str):
        v = kind(value)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {value!r}")
        return v

    return conv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser`` (the ``wardwatch sim`` subcommand)."""
    parser.add_argument("--ward", required=True, type=_ward, help="ward id, [a-z0-9][a-z0-9-]{0,31}")
    parser.add_argument("--beds", type=_positive(int), default=12, metavar="N", help="beds (devices) to simulate (default 12)")
    parser.add_argument("--scenario", metavar="FILE", help="scenario TOML (see firmware/wardsim/README.md); default: all stable")
    parser.add_argument("--rate", type=_positive(float), default=1.0, metavar="HZ", help="readings per second per device (default 1)")
    parser.add_argument("--broker", type=_broker, default=("127.0.0.1", 1883), metavar="HOST:PORT", help="MQTT broker (default 127.0.0.1:1883)")
    parser.add_argument("--credentials", metavar="FILE", help="device credentials, lines 'username:password' (mosquitto_passwd -U input)")
    parser.add_argument("--password-env", metavar="VAR", help="take one password for every device from environment variable VAR")
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument("--cafile", metavar="FILE", help="CA certificate to verify the broker (implies --tls)")
    parser.add_argument("--prefix", default=reading.DEFAULT_PREFIX, help="topic prefix (default wardwatch/v1)")
    parser.add_argument("--duration", type=_positive(float), metavar="S", help="stop after S seconds (default: run until SIGINT/SIGTERM)")
    parser.add_argument("--flush-timeout", type=float, default=10.0, metavar="S", help="at stop, wait up to S seconds for outboxes to empty (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; bed N's patient uses seed+N unless the scenario says otherwise")
    parser.add_argument("--summary", metavar="FILE", help="write per-device counters as JSON at exit")
    parser.add_argument("--outbox", type=_positive(int), default=300, metavar="N", help="outbox capacity per device, readings (default 300)")
    parser.add_argument("--keepalive", type=_positive(int), default=30, metavar="S", help="MQTT keepalive, s (default 30)")
    parser.add_argument("--fidelity", choices=("vitals", "raw"), default="vitals",
                        help="vitals: simulated values (light, any ward size); raw: a synthetic red/IR "
                             "waveform through fake MAX30102/MAX30205 registers, measured by the real "
                             "drivers and pulse-oximetry algorithm (about 6x the CPU per bed)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each device's connects and disconnects")


def read_credentials(path: str | Path) -> dict[str, str]:
    """Parse ``username:password`` lines (blank lines and ``#`` comments skipped)."""
    creds = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise SimError(f"credentials: {exc}") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, pw = line.partition(":")
        if not sep or not user:
            raise SimError(f"{path}:{n}: expected 'username:password'")
        creds[user] = pw
    return creds


def build_configs(args) -> list[dict]:
    """One bedside config dict per bed, from the parsed arguments. Raises SimError."""
    if args.credentials:
        creds = read_credentials(args.credentials)
        shared = None
    elif args.password_env:
        shared = os.environ.get(args.password_env)
        if shared is None:
            raise SimError(f"--password-env: environment variable {args.password_env} is not set")
        creds = {}
    else:
        raise SimError("give --credentials FILE or --password-env VAR")
    try:
        plan = scenariofile.load(args.scenario) if args.scenario else scenariofile.Plan()
    except scenariofile.ScenarioError as exc:
        raise SimError(str(exc)) from None
    if plan.max_bed() > args.beds:
        log.warning("%s names beds up to %d; only %d simulated", plan.source, plan.max_bed(), args.beds)
    host, port = args.broker
    tls = bool(args.tls or args.cafile)
    period_ms = 1000 / args.rate
    # Spread the devices' sampling instants over one period (seeded, so runs repeat).
    spread = random.Random(args.seed)
    cfgs, missing = [], []
    for bed in range(1, args.beds + 1):
        dev = device_id(args.ward, bed)
        if not reading.valid_id(dev):
            raise SimError(f"device id {dev!r} is longer than 32 characters: use a shorter --ward")
        password = shared if shared is not None else creds.get(dev)
        if password is None:
            missing.append(dev)
        spec, seed = plan.for_bed(bed)
        cfgs.append(
            {
                "dev": dev,
                "ward": args.ward,
                "broker": {"host": host, "port": port, "user": dev, "password": password, "tls": tls,
                           "cafile": args.cafile, "keepalive": args.keepalive},
                "prefix": args.prefix,
                "rate_hz": args.rate,
                "outbox_cap": args.outbox,
                "board": "host",
                "sim": True,
                "seed": args.seed + bed if seed is None else seed,
                "scenario": spec,
                "phase_ms": int(spread.random() * period_ms),
                "config_topic": False,
            }
        )
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise SimError(f"no password for {', '.join(missing[:3])}{more} in {args.credentials}")
    return cfgs


async def _simulate(args, cfgs: list[dict]) -> dict:
    ssl = tls_context(cfgs[0]["broker"]) if cfgs[0]["broker"]["tls"] else None
    dev_log = log.info if args.verbose else None
    apps = []
    for cfg in cfgs:
        patient = Patient(cfg["seed"], cfg["scenario"])
        sensors = rawsim.sensors_for(patient, cfg["seed"]) if args.fidelity == "raw" else patient
        apps.append(App(cfg, sensors=sensors, board=HostBoard(rssi=patient.rssi), ssl=ssl, log=dev_log))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    tasks = [asyncio.create_task(a.run()) for a in apps]
    watch = asyncio.create_task(_watch_connections(apps))
    log.info("simulating %d devices on ward %s at %g Hz -> %s:%d", len(apps), args.ward, args.rate, *args.broker)
    try:
        if args.duration:
            try:
                await asyncio.wait_for(stop.wait(), args.duration)
            except asyncio.TimeoutError:
                pass
        else:
            await stop.wait()
        log.info("stopping: flushing outboxes (up to %g s)", args.flush_timeout)
        await asyncio.gather(*(a.stop(args.flush_timeout) for a in apps))
        await asyncio.gather(*tasks)
    finally:
        watch.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    elapsed = time.monotonic() - started
    stats = {a.dev: a.stats() for a in apps}
    made = sum(s["seq_next"] for s in stats.values())
    acked = sum(s["acked"] for s in stats.values())
    left = sum(s["outbox"] for s in stats.values())
    dropped = sum(s["dropped"] for s in stats.values())
    if left or dropped:
        log.warning("%d devices, %.1f s: %d readings made, %d acknowledged, %d dropped, %d unsent",
                    len(apps), elapsed, made, acked, dropped, left)
    else:
        log.info("%d devices, %.1f s: %d readings made, all acknowledged", len(apps), elapsed, made)
    return stats


async def _watch_connections(apps, every_s: float = 10.0) -> None:
    """Warn (without -v too) while powered devices are not connected: wrong credentials or
    an unreachable broker should not pass silently."""
    while True:
        await asyncio.sleep(every_s)
        down = [a for a in apps if a.powered and not a.connected()]
        if down:
            err = next((a.client.last_error for a in down if a.client.last_error), "connecting")
            log.warning("%d of %d devices not connected (%s: %s)", len(down), len(apps), down[0].dev, err)


def run(args) -> int:
    """Run the simulator with parsed ``args``; returns the process exit code."""
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        cfgs = build_configs(args)
    except SimError as exc:
        print(f"wardwatch sim: {exc}", file=sys.stderr)
        return 2
    stats = asyncio.run(_simulate(args, cfgs))
    if args.summary:
        Path(args.summary).write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="wardsim", description="WardWatch host simulator")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
