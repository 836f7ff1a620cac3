"""The one place the gateway package reaches into the firmware.

``wardwatch sim`` runs the host simulator (package ``wardsim``, beside the firmware it runs),
and ``wardwatch version`` names the firmware version that simulator carries. Everything else
in ``gateway`` knows the boards only through the MQTT contract (``gateway.contract``).
"""

from __future__ import annotations

import argparse

HELP = "run a simulated ward: N copies of the bedside firmware on this host"


def run(argv: list[str]) -> int:
    """``wardwatch sim ARGS``: the simulator owns its options (and ``--help``)."""
    from wardsim import sim

    parser = argparse.ArgumentParser(prog="wardwatch sim", description=HELP)
    sim.add_arguments(parser)
    return sim.run(parser.parse_args(argv))


def firmware_version() -> str:
    """The bedside firmware's version (``bedside.VERSION``)."""
    from bedside import VERSION

    return VERSION
