"""Durable alarm state in SQLite (``<state_dir>/alarms.sqlite``): patients, manual
observations, the live alarms, and an append-only audit trail.

Who calls it: the alarm shell (``gateway.sinks.alarms``), from one thread at a time under
its lock, and ``wardwatch audit`` (read-only). WAL mode with ``synchronous=FULL``: a command
is answered only after its change and its audit row are committed together, so an
acknowledged ack is never forgotten by a power cut. Patient references (an MRN or a ward's
label) live only here, never in InfluxDB or on MQTT.

The audit table refuses UPDATE and DELETE (triggers), so history cannot be rewritten
through SQL by mistake. Each row: seq, when (epoch ms), who (the user's name), via (the
MQTT account or ``gateway``), action, target, and the JSON before and after.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import msgspec

from ..clinical.engine import Alarm, ManualObs

SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (
    patient TEXT PRIMARY KEY,
    ward TEXT NOT NULL,
    bed TEXT NOT NULL,
    admitted_ms INTEGER NOT NULL,
    scale INTEGER NOT NULL DEFAULT 1,
    limits TEXT NOT NULL DEFAULT '{}',
    UNIQUE (ward, bed)
);
CREATE TABLE IF NOT EXISTS observations (
    patient TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS observations_patient ON observations (patient, at_ms);
CREATE TABLE IF NOT EXISTS alarms (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    who TEXT NOT NULL,
    via TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before TEXT,
    after TEXT
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class PatientRow(msgspec.Struct, frozen=True):
    patient: str
    ward: str
    bed: str
    admitted_ms: int
    scale: int
    limits: dict


class AuditRow(msgspec.Struct, frozen=True):
    seq: int
    at_ms: int
    who: str
    via: str
    action: str
    target: str
    before: object
    after: object


class Store:
    """One SQLite file. Writes happen inside ``with store.tx():`` blocks (one commit each)."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def tx(self):
        """A transaction: ``with store.tx(): ...`` commits at the end, rolls back on error."""
        return _Tx(self.db)

    # -- patients -------------------------------------------------------------------------

    def patients(self) -> list[PatientRow]:
        rows = self.db.execute("SELECT patient, ward, bed, admitted_ms, scale, limits FROM patients ORDER BY ward, bed")
        return [PatientRow(p, w, b, a, s, json.loads(lim)) for p, w, b, a, s, lim in rows]

    def patient(self, patient: str) -> PatientRow | None:
        for row in self.patients():
            if row.patient == patient:
                return row
        return None

    def put_patient(self, row: PatientRow) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO patients (patient, ward, bed, admitted_ms, scale, limits) VALUES (?,?,?,?,?,?)",
            (row.patient, row.ward, row.bed, row.admitted_ms, row.scale, json.dumps(row.limits, sort_keys=True)),
        )

    def delete_patient(self, patient: str) -> None:
        self.db.execute("DELETE FROM patients WHERE patient = ?", (patient,))

    # -- observations -----------------------------------------------------------------------

    def add_observation(self, patient: str, obs: ManualObs) -> None:
        self.db.execute(
            "INSERT INTO observations (patient, at_ms, body) VALUES (?,?,?)",
            (patient, obs.at_ms, msgspec.json.encode(obs).decode()),
        )

    def latest_observation(self, patient: str) -> ManualObs | None:
        row = self.db.execute(
            "SELECT body FROM observations WHERE patient = ? ORDER BY at_ms DESC LIMIT 1", (patient,)
        ).fetchone()
        return msgspec.json.decode(row[0], type=ManualObs) if row else None

    # -- live alarms ------------------------------------------------------------------------

    def save_alarm(self, alarm: Alarm) -> None:
        if alarm.state == "cleared":
            self.db.execute("DELETE FROM alarms WHERE id = ?", (alarm.id,))
        else:
            self.db.execute(
                "INSERT OR REPLACE INTO alarms (id, body) VALUES (?, ?)", (alarm.id, msgspec.json.encode(alarm).decode())
            )

    def alarms(self) -> list[Alarm]:
        return [msgspec.json.decode(body, type=Alarm) for (body,) in self.db.execute("SELECT body FROM alarms")]

    # -- audit ------------------------------------------------------------------------------

    def audit(self, at_ms: int, who: str, via: str, action: str, target: str, before=None, after=None) -> None:
        self.db.execute(
            "INSERT INTO audit (at_ms, who, via, action, target, before, after) VALUES (?,?,?,?,?,?,?)",
            (
                at_ms, who, via, action, target,
                None if before is None else json.dumps(before, sort_keys=True, default=str),
                None if after is None else json.dumps(after, sort_keys=True, default=str),
            ),
        )

    def audit_rows(self, since_ms: int = 0, limit: int = 1000) -> list[AuditRow]:
        rows = self.db.execute(
            "SELECT seq, at_ms, who, via, action, target, before, after FROM audit WHERE at_ms >= ? ORDER BY seq LIMIT ?",
            (since_ms, limit),
        )
        return [
            AuditRow(s, a, w, v, act, t, json.loads(b) if b else None, json.loads(af) if af else None)
            for s, a, w, v, act, t, b, af in rows
        ]

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


class _Tx:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
