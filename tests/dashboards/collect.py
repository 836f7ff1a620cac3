"""Read the committed provisioning tree: dashboards, their targets, alert-rule queries.

Shared by the static and the live-query tests (pure helpers over the files in dashboards/).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOT = REPO_ROOT / "dashboards"
JSON_DIR = ROOT / "json"
PROVISIONING = ROOT / "provisioning"


def dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(JSON_DIR.glob("*.json"))}


def panels(board: dict) -> list[dict]:
    """Every panel, rows' nested panels included."""
    out = []
    for p in board.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def targets(board: dict) -> list[tuple[dict, dict]]:
    """(panel, target) for every query target of every panel."""
    return [(p, t) for p in panels(board) for t in p.get("targets", [])]


def provisioning_yaml(kind: str) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((PROVISIONING / kind).glob("*.yaml"))]


def alert_rules() -> list[dict]:
    return [r for doc in provisioning_yaml("alerting") for g in doc.get("groups", []) for r in g["rules"]]


def datasource_uids() -> set[str]:
    return {ds["uid"] for doc in provisioning_yaml("datasources") for ds in doc.get("datasources", [])}
