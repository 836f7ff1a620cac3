"""``wardwatch provision <what>``: turning hosts and boards into a deployment.

Each target is a module of this package with ``HELP``, ``add_arguments(parser)`` and
``run(args) -> exit code``; ``gateway/cli/main.py`` mounts this command through
``add_subcommands``. Importing a target happens only when the parser is built.
"""

from __future__ import annotations

import argparse
import importlib

# (name, module): one line per provisioning target, in the order a deployment needs them.
TARGETS: list[tuple[str, str]] = [
    ("broker", "provisioning.broker"),
    ("influx", "provisioning.influx"),
    ("gateway", "provisioning.gateway_service"),
    ("device", "provisioning.device"),
]


def add_subcommands(parser: argparse.ArgumentParser) -> None:
    """Add ``wardwatch provision <target>`` for every target in TARGETS."""
    sub = parser.add_subparsers(dest="provision_target", required=True, metavar="TARGET")
    for name, module_name in TARGETS:
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
