"""Device -> (ward, bed) registry, loaded from a TOML file.

File format (``[devices.<device-id>]`` tables)::

    [devices.sim-w1-01]
    ward = "w1"
    bed = "01"

Who calls it: the ingest shell, once per message (a dict lookup). Devices not in the file
are stored with bed ``unassigned``; the alarm engine (later) raises nothing for them.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from .config import ConfigError, _line_of, read_toml
from .contract import ID_RE, WARD_RE

UNASSIGNED = "unassigned"
# A bed id is a level of the alarm topics (<prefix>/<ward>/alarms/active/<bed>).
BED_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
# Words the gateway's own topics use where a device id would stand.
RESERVED = frozenset({"alarms", "cmd", "news2"})


class Placement(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ward: str
    bed: str


class _File(msgspec.Struct, forbid_unknown_fields=True):
    devices: dict[str, Placement] = {}


class Registry:
    """Immutable mapping; ``bed_of(ward, device)`` is the per-message call."""

    def __init__(self, placements: dict[str, Placement] | None = None):
        self._placements = dict(placements or {})

    def __len__(self) -> int:
        return len(self._placements)

    def placement(self, device: str) -> Placement | None:
        return self._placements.get(device)

    def bed_of(self, ward: str, device: str) -> str:
        """The device's bed, or ``unassigned`` if it is not registered to ``ward``."""
        p = self._placements.get(device)
        if p is None or p.ward != ward:
            return UNASSIGNED
        return p.bed

    @classmethod
    def load(cls, path: str | Path) -> "Registry":
        """Read the registry file; errors name the file, line and key."""
        text, data = read_toml(path, "registry")
        try:
            parsed = msgspec.convert(data, _File)
        except msgspec.ValidationError as err:
            raise ConfigError(f"{path}: {err}") from None
        for device, p in parsed.devices.items():
            line = _line_of(text, f"devices.{device}") or "?"
            if not ID_RE.match(device):
                raise ConfigError(f"{path}:{line}: devices.{device}: not a device id [a-z0-9][a-z0-9-]{{2,31}}")
            if not WARD_RE.match(p.ward):
                raise ConfigError(f"{path}:{line}: devices.{device}.ward: {p.ward!r} is not a ward id")
            if device in RESERVED:
                raise ConfigError(f"{path}:{line}: devices.{device}: {device!r} is reserved for gateway topics")
            if not BED_RE.match(p.bed):
                raise ConfigError(f"{path}:{line}: devices.{device}.bed: {p.bed!r} is not a bed id {BED_RE.pattern}")
        return cls(parsed.devices)
