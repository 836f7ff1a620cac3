"""The clinician's NEWS2 calculator: ``wardwatch news2 [--rr N] [--spo2 N] [--scale 1|2] ...``.

Prints one JSON object on one line (the :class:`gateway.clinical.news2.News2` fields: score,
band, partial, subscores, missing, single3, scale, response) and exits 0. An invalid value
prints a message naming the parameter on stderr and exits 2, as argparse does for bad usage.
Parameters left out are "not measured": the score is then partial and says which are missing.

``gateway/cli/main.py`` mounts this as the ``news2`` subcommand through :func:`add_arguments` and
:func:`run`; ``python -m gateway.cli.news2calc`` runs it stand-alone.
"""

from __future__ import annotations

import argparse
import json
import sys

import msgspec

from ..clinical import news2

DESCRIPTION = "NEWS2 calculator (RCP 2017); parameters left out count as not measured"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the observation options to ``parser`` (dests: rr spo2 scale o2 sbp pulse acvpu temp)."""
    parser.add_argument("--rr", type=float, metavar="N", help="respiration rate /min")
    parser.add_argument("--spo2", type=float, metavar="N", help="SpO2 %%")
    parser.add_argument(
        "--scale",
        type=int,
        choices=(1, 2),
        default=1,
        help="SpO2 scale; 2 only for confirmed hypercapnic respiratory failure (default 1)",
    )
    # One dest for both flags: True = oxygen, False = air, None (neither given) = unknown.
    air_or_o2 = parser.add_mutually_exclusive_group()
    air_or_o2.add_argument(
        "--o2", dest="o2", action="store_const", const=True, default=None, help="on supplemental oxygen"
    )
    air_or_o2.add_argument("--air", dest="o2", action="store_const", const=False, help="on air")
    parser.add_argument("--sbp", type=float, metavar="N", help="systolic blood pressure mmHg")
    parser.add_argument("--pulse", type=float, metavar="N", help="pulse /min")
    parser.add_argument(
        "--acvpu",
        type=str.upper,
        choices=("A", "C", "V", "P", "U"),
        help="consciousness: Alert, new Confusion, Voice, Pain, Unresponsive",
    )
    parser.add_argument("--temp", type=float, metavar="X", help="temperature degC")


def run(args: argparse.Namespace) -> int:
    """Score the parsed options and print the result as one JSON line; 0 on success, 2 if invalid."""
    obs = news2.Observations(
        rr=args.rr,
        spo2=args.spo2,
        scale=args.scale,
        o2=args.o2,
        sbp=args.sbp,
        pulse=args.pulse,
        acvpu=args.acvpu,
        temp=args.temp,
    )
    try:
        result = news2.score(obs)
    except ValueError as exc:
        # score() names the parameter first ("spo2: must be at most 100, ...").
        print(f"wardwatch news2: invalid {exc}", file=sys.stderr)
        return 2
    # json.dumps keeps the line ASCII (the response text has en dashes) whatever the locale.
    print(json.dumps(msgspec.to_builtins(result)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wardwatch news2", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
