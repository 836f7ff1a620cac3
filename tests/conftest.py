"""Shared fixtures: a real Mosquitto + InfluxDB stack per test, on free loopback ports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provisioning.stack.services import Stack

REPO = Path(__file__).resolve().parents[1]
SCHEMA_DIR = REPO / "docs" / "schema"


@pytest.fixture
def stack(tmp_path):
    """A fresh Mosquitto and InfluxDB (with the v2 write adapter); stopped after the test."""
    with Stack(tmp_path / "stack") as s:
        yield s


@pytest.fixture(scope="session")
def reading_schema():
    import jsonschema

    schema = json.loads((SCHEMA_DIR / "reading.v1.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="session")
def status_schema():
    import jsonschema

    schema = json.loads((SCHEMA_DIR / "status.v1.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)
