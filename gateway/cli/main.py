"""The ``wardwatch`` command: one entry point, a subcommand per job, ``--help`` on each.

Each subcommand lives in its own module of ``gateway.cli`` (operator tools) or is the
gateway service itself; ``sim`` is dispatched to the firmware's host simulator through
``gateway.cli.simulator``, the only module here that imports firmware code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import simulator


def _cmd_gateway(args) -> int:
    from .. import config, service

    try:
        cfg = config.load(args.config)
        if args.print_config:
            print(json.dumps(cfg.redacted(), indent=2))
            return 0
        return service.run(cfg)
    except config.ConfigError as exc:
        print(f"wardwatch gateway: config error: {exc}", file=sys.stderr)
        return 2


def _cmd_ward(args) -> int:
    from ..influxql import InfluxQL
    from . import wardview

    db = InfluxQL(args.influx, args.database, os.environ.get("WARDWATCH_INFLUX_TOKEN", ""))
    try:
        wardview.run(db, args.ward, args.refresh, args.duration)
    except KeyboardInterrupt:
        pass
    return 0


def _cmd_audit(args) -> int:
    import sqlite3
    import time
    from pathlib import Path

    from ..sinks.alarm_store import Store
    from .report import parse_duration

    path = Path(args.state_dir) / "alarms.sqlite"
    try:
        since_ms = int(time.time() * 1000) - parse_duration(args.since)
        store = Store(path, readonly=True)
        rows = store.audit_rows(since_ms)
    except (ValueError, argparse.ArgumentTypeError, sqlite3.Error) as exc:
        print(f"wardwatch audit: {path}: {exc}", file=sys.stderr)
        return 1
    for row in rows:
        print(json.dumps({f: getattr(row, f) for f in row.__struct_fields__}))
    return 0


def _cmd_version(args) -> int:
    from importlib.metadata import version

    print(f"wardwatch {version('wardwatch')} (firmware {simulator.firmware_version()})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wardwatch",
        description="WardWatch: secondary ward monitoring of vital signs (not a medical device).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("gateway", help="run the gateway service (MQTT -> validate -> InfluxDB)")
    p.add_argument("--config", metavar="FILE", help="TOML config file (see gateway/gateway.example.toml)")
    p.add_argument("--print-config", action="store_true", help="print the effective config (secrets redacted) and exit")
    p.set_defaults(func=_cmd_gateway)

    # Listed for --help only: main() hands everything after "sim" to the simulator's parser.
    sub.add_parser("sim", help=simulator.HELP, add_help=False)

    p = sub.add_parser("ward", help="live terminal view of one ward, read from InfluxDB")
    p.add_argument("--ward", required=True, help="ward id")
    p.add_argument("--influx", default="http://127.0.0.1:8086", help="InfluxDB base URL serving InfluxQL /query")
    p.add_argument("--database", default="wardwatch", help="database (1.x) or DBRP-mapped name (2.x)")
    p.add_argument("--refresh", type=float, default=1.0, metavar="S", help="seconds between refreshes")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.set_defaults(func=_cmd_ward)

    from . import alarm_client, news2calc, report

    p = sub.add_parser("alarms", help="active alarms, acknowledge, and the alarm load report")
    alarms = p.add_subparsers(dest="alarms_command", required=True, metavar="ACTION")
    alarm_client.add_alarms_arguments(alarms)
    p = alarms.add_parser("report", help="alarm load: alarms per bed-day, time active, share acknowledged, top beds")
    report.add_arguments(p)
    p.set_defaults(func=report.run)

    p = sub.add_parser("patients", help="admit, assign (move), discharge patients; patient limits")
    alarm_client.add_patients_arguments(p.add_subparsers(dest="patients_command", required=True, metavar="ACTION"))

    p = sub.add_parser("obs", help="enter manual observations (RR, systolic BP, ACVPU, oxygen) for NEWS2")
    alarm_client.add_obs_arguments(p)

    p = sub.add_parser("news2", help="NEWS2 calculator: prints score, band, partial, subscores, response as JSON")
    news2calc.add_arguments(p)
    p.set_defaults(func=news2calc.run)

    p = sub.add_parser("audit", help="print the audit trail from the gateway's state directory (read-only)")
    p.add_argument("--state-dir", default="/var/lib/wardwatch", help="the gateway's state_dir")
    p.add_argument("--since", default="24h", help="how far back, e.g. 90m, 24h, 7d")
    p.set_defaults(func=_cmd_audit)

    from . import doctor

    p = sub.add_parser("doctor", help="check a gateway's broker, TLS, InfluxDB, /healthz, clock, spool and devices")
    doctor.add_arguments(p)
    p.set_defaults(func=doctor.run)

    from dashboards import push as dashboards_push

    p = sub.add_parser("dashboards", help="Grafana dashboards and alert rules from dashboards/")
    dash = p.add_subparsers(dest="dashboards_command", required=True, metavar="ACTION")
    p = dash.add_parser("push", help="upload data source, folder, dashboards and alerting to a running Grafana "
                                     "(create/update only what differs; --dry-run prints the plan)")
    dashboards_push.add_arguments(p)
    p.set_defaults(func=dashboards_push.run)

    from provisioning.cli import add_subcommands

    p = sub.add_parser("provision", help="turn hosts and boards into a deployment (broker, gateway, InfluxDB, boards)")
    add_subcommands(p)

    p = sub.add_parser("version", help="print versions")
    p.set_defaults(func=_cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:
        return simulator.run(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
