"""InfluxDB line protocol, built directly as strings (a Point object is about 7x slower per
line: docs/decisions.md).

Pure functions; the schema is in docs/design.md and docs/protocol.md. All timestamps are in
nanoseconds, so one write precision serves every measurement.
"""

from __future__ import annotations

from .contract import Reading, Status

_TAG_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " "})


def tag(value: str) -> str:
    """Escape a tag value (commas, equals signs, spaces; newlines cannot be represented)."""
    return value.translate(_TAG_ESCAPE)


def string_field(value: str) -> str:
    """Quote a string field value."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def vitals(r: Reading, ward: str, bed: str, time_ns: int) -> str:
    """One `vitals` point. Null values are omitted, as line protocol has no null."""
    fields = [f"seq={r.seq}i", f"sqi={r.sqi}", f'probe="{r.probe}"', f"tq={r.tq}i", f"sim={'true' if r.sim else 'false'}"]
    if r.hr is not None:
        fields.append(f"hr={r.hr}i")
    if r.spo2 is not None:
        fields.append(f"spo2={r.spo2}i")
    if r.temp is not None:
        fields.append(f"temp={r.temp}")
    if r.pi is not None:
        fields.append(f"pi={r.pi}")
    if r.batt is not None:
        fields.append(f"batt={r.batt}i")
    if r.rssi is not None:
        fields.append(f"rssi={r.rssi}i")
    return f"vitals,bed={tag(bed)},device={r.dev},ward={ward} {','.join(fields)} {time_ns}"


def device(s: Status, ward: str, time_ns: int) -> str:
    """One `device` point from a status message or a last will."""
    fields = [f'state="{s.state}"']
    for name in ("batt", "rssi", "outbox", "dropped", "refused", "uptime_s"):
        value = getattr(s, name)
        if value is not None:
            fields.append(f"{name}={value}i")
    if s.fw is not None:
        fields.append(f"fw={string_field(s.fw)}")
    if s.refusal is not None:
        fields.append(f"refusal={string_field(s.refusal)}")
    return f"device,device={s.dev},ward={ward} {','.join(fields)} {time_ns}"


def rejected(reason: str, ward: str, device: str, excerpt: bytes, time_ns: int) -> str:
    """One `rejected` point: count=1 with a short, printable excerpt of the payload."""
    text = excerpt[:64].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return (
        f"rejected,reason={reason},ward={tag(ward or '-')} count=1i,"
        f"device={string_field(device)},excerpt={string_field(text)} {time_ns}"
    )


def gateway(fields: dict[str, int | float], instance: str, time_ns: int) -> str:
    """One `gateway` self-metrics point; ints are written as integers."""
    parts = [f"{k}={v}i" if isinstance(v, int) else f"{k}={v}" for k, v in fields.items()]
    return f"gateway,instance={tag(instance)} {','.join(parts)} {time_ns}"


def _num(value: float) -> str:
    return f"{value}" if isinstance(value, float) else f"{value}.0"


def alarm(event: str, a, time_ns: int) -> str:
    """One `alarm` point per lifecycle event of ``a`` (a ``gateway.clinical.engine.Alarm``)."""
    fields = [
        f"event={string_field(event)}",
        f"state={string_field(a.state)}",
        f"alarm_id={string_field(a.id)}",
        f"message={string_field(a.message)}",
        f"since_ms={a.since_ms}i",
        f"acked={'true' if a.acked_by else 'false'}",
        f"acked_by={string_field(a.acked_by or '')}",
        f"simulated={'true' if a.simulated else 'false'}",
    ]
    if a.value is not None:
        fields.append(f"value={_num(a.value)}")
    if a.limit is not None:
        fields.append(f"limit={_num(a.limit)}")
    return (
        f"alarm,bed={tag(a.bed)},code={a.code},device={tag(a.device or '-')},kind={a.kind},"
        f"priority={a.priority},ward={a.ward} {','.join(fields)} {time_ns}"
    )


def news2(ward: str, bed: str, result, simulated: bool, time_ns: int) -> str:
    """One `news2` point: aggregate, band, partial and each present sub-score."""
    fields = [
        f"score={result.score}i",
        f"band={string_field(result.band)}",
        f"partial={'true' if result.partial else 'false'}",
        f"simulated={'true' if simulated else 'false'}",
    ]
    fields += [f"{name}={value}i" for name, value in result.subscores.items()]
    return f"news2,bed={tag(bed)},ward={ward} {','.join(fields)} {time_ns}"


def limits(ward: str, bed: str, fields: dict[str, float | str], admitted: bool, time_ns: int) -> str:
    """One `limits` point: the limits in force for a bed (``rules.limits_in_force``)."""
    parts = [f"admitted={'true' if admitted else 'false'}"]
    parts += [f"{k}={string_field(v)}" if isinstance(v, str) else f"{k}={_num(v)}" for k, v in fields.items()]
    return f"limits,bed={tag(bed)},ward={ward} {','.join(parts)} {time_ns}"
