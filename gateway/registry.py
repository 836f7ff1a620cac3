"""Device -> (ward, bed) registry, loaded from a TOML file.

File format (``[devices.<device-id>]`` tables)::

    [devices.sim-w1-01]
    ward = "w1"
    bed = "01"

Who calls it: the ingest shell, once per message (a dict lookup). Devices not in the file
are stored with bed ``unassigned``; the alarm engine (later) raises nothing for them.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from .config import ConfigError, read_toml
from .contract import BED_RE, DEVICE_PATTERN, ID_RE, UNASSIGNED, WARD_RE
from .tomlkeys import error_key, error_message, line_of, located

# Words the gateway's own topics use where a device id would stand.
RESERVED = frozenset({"alarms", "cmd", "news2"})


class Placement(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ward: str
    bed: str


class _File(msgspec.Struct, forbid_unknown_fields=True):
    devices: dict[str, dict] = {}


class Registry:
    """Immutable mapping; ``bed_of(ward, device)`` is the per-message call."""

    def __init__(self, placements: dict[str, Placement] | None = None):
        self._placements = dict(placements or {})

    def __len__(self) -> int:
        return len(self._placements)

    def placements(self) -> dict[str, Placement]:
        """Every registered device and its place (a copy)."""
        return dict(self._placements)

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
        source = str(path)
        try:
            tables = msgspec.convert(data, _File).devices
        except msgspec.ValidationError as err:
            raise ConfigError(located(source, text, error_key(err), error_message(err))) from None
        placements: dict[str, Placement] = {}
        for device, table in tables.items():
            key = f"devices.{device}"
            try:
                p = placements[device] = msgspec.convert(table, Placement)
            except msgspec.ValidationError as err:
                raise ConfigError(located(source, text, error_key(err, key), error_message(err))) from None
            line = line_of(text, ("devices", device)) or "?"
            if not ID_RE.match(device):
                raise ConfigError(f"{path}:{line}: {key}: not a device id {DEVICE_PATTERN}")
            if not WARD_RE.match(p.ward):
                raise ConfigError(f"{path}:{line}: {key}.ward: {p.ward!r} is not a ward id")
            if device in RESERVED:
                raise ConfigError(f"{path}:{line}: {key}: {device!r} is reserved for gateway topics")
            if not BED_RE.match(p.bed):
                raise ConfigError(f"{path}:{line}: {key}.bed: {p.bed!r} is not a bed id {BED_RE.pattern}")
        return cls(placements)
