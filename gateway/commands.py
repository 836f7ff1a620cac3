"""Commands to the alarm engine over MQTT: the payloads, and their topics.

A command is published at QoS 1 on ``<prefix>/<ward>/cmd/<account>``, where ``<account>``
is the publisher's MQTT username (the broker ACL pins it, so the gateway knows which account
sent it); the reply comes on ``<prefix>/<ward>/cmd/<account>/reply``. The payload names the
person (``user``), who goes into the audit trail. The wire format is in docs/protocol.md.
Who uses it: ``gateway.sinks.alarms`` (decodes) and ``gateway.cli.alarm_client`` (encodes).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .contract import BED_PATTERN, WARD_PATTERN

User = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\n\r\t]+$")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\n\r\t/]+$")]
Ward = Annotated[str, msgspec.Meta(pattern=f"^{WARD_PATTERN}$")]
Bed = Annotated[str, msgspec.Meta(pattern=f"^{BED_PATTERN}$")]


class Cmd(msgspec.Struct, tag_field="op", forbid_unknown_fields=True, kw_only=True):
    v: Literal[1] = 1
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    user: User


class AckCmd(Cmd, tag="ack"):
    """Acknowledge one alarm by id, or every unacknowledged alarm of a bed."""

    alarm: str | None = None
    bed: Bed | None = None


class ListCmd(Cmd, tag="list"):
    bed: Bed | None = None


class PatientsCmd(Cmd, tag="patients"):
    pass


class AdmitCmd(Cmd, tag="admit"):
    bed: Bed
    patient: Text
    scale: Literal[1, 2] = 1
    limits: list[str] = []


class AssignCmd(Cmd, tag="assign"):
    """Move an admitted patient to ``bed`` (of ``to_ward``, default the topic's ward)."""

    patient: Text
    bed: Bed
    to_ward: Ward | None = None


class DischargeCmd(Cmd, tag="discharge"):
    patient: Text


class LimitsCmd(Cmd, tag="limits"):
    """Replace a patient's limit overrides (``code.key=value``) and optionally the SpO2 scale."""

    patient: Text
    limits: list[str] = []
    scale: Literal[1, 2] | None = None


class ObsCmd(Cmd, tag="obs"):
    """Manual observations: respiration /min, systolic BP mmHg, ACVPU, on oxygen."""

    bed: Bed
    rr: Annotated[float, msgspec.Meta(ge=0, le=80)] | None = None
    sbp: Annotated[float, msgspec.Meta(ge=30, le=300)] | None = None
    acvpu: Literal["A", "C", "V", "P", "U"] | None = None
    o2: bool | None = None


Command = AckCmd | ListCmd | PatientsCmd | AdmitCmd | AssignCmd | DischargeCmd | LimitsCmd | ObsCmd

_decoder = msgspec.json.Decoder(Command)


class BadCommand(ValueError):
    pass


def decode(payload: bytes) -> Command:
    """Decode a command; BadCommand says what is wrong (for the reply)."""
    if len(payload) > 4096:
        raise BadCommand("command larger than 4096 bytes")
    try:
        return _decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as err:
        raise BadCommand(str(err)) from None


def command_topic(prefix: str, ward: str, account: str) -> str:
    return f"{prefix}/{ward}/cmd/{account}"


def parse_command_topic(topic: str, prefix: str) -> tuple[str, str] | None:
    """``<prefix>/<ward>/cmd/<account>`` -> (ward, account); anything else -> None."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) == 3 and parts[1] == "cmd" and parts[0] and parts[2]:
        return parts[0], parts[2]
    return None


def events_topic(prefix: str, ward: str) -> str:
    return f"{prefix}/{ward}/alarms/events"


def active_topic(prefix: str, ward: str, bed: str) -> str:
    return f"{prefix}/{ward}/alarms/active/{bed}"


def news2_topic(prefix: str, ward: str, bed: str) -> str:
    return f"{prefix}/{ward}/news2/{bed}"
