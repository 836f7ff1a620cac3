"""The ``wardwatch`` command: one entry point, a subcommand per job, ``--help`` on each."""

from __future__ import annotations

import argparse
import json
import os
import sys


SIM_HELP = "run a simulated ward: N copies of the bedside firmware on this host"


def _cmd_gateway(args) -> int:
    from . import config, service

    try:
        cfg = config.load(args.config)
        if args.print_config:
            print(json.dumps(cfg.redacted(), indent=2))
            return 0
        return service.run(cfg)
    except config.ConfigError as exc:
        print(f"wardwatch gateway: config error: {exc}", file=sys.stderr)
        return 2


def _run_sim(argv: list[str]) -> int:
    # The simulator owns its options (and --help); the gateway never imports firmware code.
    from wardsim import sim

    parser = argparse.ArgumentParser(prog="wardwatch sim", description=SIM_HELP)
    sim.add_arguments(parser)
    return sim.run(parser.parse_args(argv))


def _cmd_ward(args) -> int:
    from . import wardview

    db = wardview.InfluxQL(args.influx, args.database, os.environ.get("WARDWATCH_INFLUX_TOKEN", ""))
    try:
        wardview.run(db, args.ward, args.refresh, args.duration)
    except KeyboardInterrupt:
        pass
    return 0


def _cmd_version(args) -> int:
    from importlib.metadata import version

    from bedside import VERSION

    print(f"wardwatch {version('wardwatch')} (firmware {VERSION})")
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
    sub.add_parser("sim", help=SIM_HELP, add_help=False)

    p = sub.add_parser("ward", help="live terminal view of one ward, read from InfluxDB")
    p.add_argument("--ward", required=True, help="ward id")
    p.add_argument("--influx", default="http://127.0.0.1:8086", help="InfluxDB base URL serving InfluxQL /query")
    p.add_argument("--database", default="wardwatch", help="database (1.x) or DBRP-mapped name (2.x)")
    p.add_argument("--refresh", type=float, default=1.0, metavar="S", help="seconds between refreshes")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.set_defaults(func=_cmd_ward)

    p = sub.add_parser("version", help="print versions")
    p.set_defaults(func=_cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:
        return _run_sim(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
