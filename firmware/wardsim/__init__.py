"""wardsim: the WardWatch host simulator (CPython only). It runs many copies of the bedside
firmware (package ``bedside``) in one asyncio process; see ``wardsim.sim``."""

import sys


def install_stubs():
    """Make ``import machine`` / ``import network`` find the CPython stand-ins, for board
    code run on the host. Modules already present (a real board) are left alone."""
    from . import machine, network

    sys.modules.setdefault("machine", machine)
    sys.modules.setdefault("network", network)
