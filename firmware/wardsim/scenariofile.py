"""Scenario files (TOML) for the host simulator: which bed follows which scenario.

Format (documented with examples in firmware/wardsim/README.md)::

    default = "stable"            # optional: scenario of beds not listed below

    [[bed]]
    beds = [3]                    # bed numbers, 1-based; or beds = "all"
    scenario = "desaturation"     # optional: a named scenario (bedside.simvitals.SCENARIOS)
    start_s = 20                  # optional: shift every phase of this table by 20 s
    seed = 42                     # optional: patient seed (default: --seed + bed)
    baseline = { hr = 78, spo2 = 97, temp = 36.8 }   # optional: the patient's baseline

    [[bed.phase]]                 # optional: explicit phases, after the named scenario's
    at_s = 30                     # s since the simulation started (plus start_s)
    ramp_s = 90                   # optional: linear ramp to the targets below
    spo2 = 85                     # targets: hr, spo2, temp, pi, sqi (a number or "base")
    probe = "off"                 # or: power = "off" / network = "down", with for_s

``load(path)`` returns a ``Plan``; ``Plan.for_bed(bed)`` gives ``(scenario_spec, seed)``
where the spec is what ``bedside.simvitals.Patient`` takes. Errors name the file and table.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from bedside import simvitals

_BED_KEYS = {"beds", "scenario", "start_s", "seed", "baseline", "phase"}


class ScenarioError(ValueError):
    pass


class Plan:
    def __init__(self, default="stable", beds=None, all_beds=None, source="(built in)"):
        self.default = default
        self.beds = beds or {}  # bed number -> (spec, seed or None)
        self.all_beds = all_beds  # (spec, seed) for beds = "all", or None
        self.source = source

    def for_bed(self, bed: int):
        """``(scenario spec, seed or None)`` for a 1-based bed number."""
        if bed in self.beds:
            return self.beds[bed]
        if self.all_beds is not None:
            return self.all_beds
        return self.default, None

    def max_bed(self) -> int:
        return max(self.beds, default=0)


def load(path: str | Path) -> Plan:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return parse(data, str(path))


def parse(data: dict, source: str = "(scenario)") -> Plan:
    unknown = set(data) - {"default", "bed"}
    if unknown:
        raise ScenarioError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
    default = data.get("default", "stable")
    try:
        simvitals.phases(default)
    except ValueError as exc:
        raise ScenarioError(f"{source}: default: {exc}") from None
    plan = Plan(default, source=source)
    tables = data.get("bed", [])
    if not isinstance(tables, list):
        raise ScenarioError(f"{source}: use [[bed]] tables")
    for i, t in enumerate(tables, 1):
        where = f"{source}: [[bed]] #{i}"
        if not isinstance(t, dict):
            raise ScenarioError(f"{where}: not a table")
        unknown = set(t) - _BED_KEYS
        if unknown:
            raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}")
        spec = {"phases": t.get("phase", []), "start_s": t.get("start_s", 0)}
        if "scenario" in t:
            spec["name"] = t["scenario"]
        if "baseline" in t:
            spec["baseline"] = t["baseline"]
        try:
            simvitals.phases(spec)
        except ValueError as exc:
            raise ScenarioError(f"{where}: {exc}") from None
        seed = t.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ScenarioError(f"{where}: seed must be an integer")
        beds = t.get("beds")
        if beds == "all":
            if plan.all_beds is not None:
                raise ScenarioError(f"{where}: beds = \"all\" given twice")
            plan.all_beds = (spec, seed)
            continue
        if not isinstance(beds, list) or not beds or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in beds):
            raise ScenarioError(f"{where}: beds must be a non-empty list of bed numbers >= 1, or \"all\"")
        for b in beds:
            if b in plan.beds:
                raise ScenarioError(f"{where}: bed {b} is already given a scenario")
            plan.beds[b] = (spec, seed)
    return plan
