"""The operator side of the command topics: ``wardwatch alarms|patients|obs`` send one command
and print the gateway's reply.

Connection settings come from a gateway-style config file (``--config``: its ``[mqtt]``
section) and the environment (``WARDWATCH_MQTT_HOST``, ``_PORT``, ``_USERNAME``,
``_PASSWORD``, ``_TLS``, ``_CAFILE``...), so an operator account's password never sits on a
command line. The account must be allowed by the broker ACL to publish on
``<prefix>/<ward>/cmd/<account>`` (provisioning/mosquitto/acl).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .. import config as gwconfig
from .. import commands as C


class CommandFailed(Exception):
    pass


def send(cfg: gwconfig.Config, ward: str, command: dict, timeout_s: float = 10.0) -> object:
    """Publish ``command`` (without id; one is added) and return the reply's result.

    Raises CommandFailed with the gateway's error, or when no reply arrives in time.
    """
    m = cfg.mqtt
    account = m.username
    request_id = uuid.uuid4().hex[:16]
    topic = C.command_topic(m.prefix, ward, account)
    reply: dict = {}
    got = threading.Event()
    subscribed = threading.Event()
    failure: list[str] = []

    def on_connect(client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            failure.append(f"broker refused the connection: {reason_code}")
            got.set()
            return
        client.subscribe(topic + "/reply", qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        if reason_codes and reason_codes[0].is_failure:
            failure.append(f"not allowed to read {topic}/reply (broker ACL)")
            got.set()
            return
        subscribed.set()

    def on_message(client, userdata, msg):
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        if data.get("id") == request_id:
            reply.update(data)
            got.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"wardwatch-cli-{request_id}", protocol=mqtt.MQTTv5)
    client.username_pw_set(account, cfg.mqtt_password() or None)
    if m.tls:
        client.tls_set(ca_certs=m.cafile or None)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    try:
        client.connect(m.host, m.port, keepalive=30)
    except OSError as exc:
        raise CommandFailed(f"cannot reach the broker at {m.host}:{m.port}: {exc}") from None
    client.loop_start()
    try:
        if not subscribed.wait(timeout_s) and not failure:
            raise CommandFailed(f"no subscription to the reply topic within {timeout_s:g} s")
        if failure:
            raise CommandFailed(failure[0])
        client.publish(topic, json.dumps({"v": 1, "id": request_id, **command}), qos=1)
        if not got.wait(timeout_s):
            raise CommandFailed(
                f"no reply from the gateway within {timeout_s:g} s; the command stays queued in the "
                "broker and is applied when the gateway runs"
            )
        if failure:
            raise CommandFailed(failure[0])
    finally:
        client.disconnect()
        client.loop_stop()
    if not reply.get("ok"):
        raise CommandFailed(reply.get("error", "refused"))
    return reply.get("result")


# -- the CLI ------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser, user: bool = True) -> None:
    p.add_argument("--config", metavar="FILE", help="config whose [mqtt] section names the broker (env overrides apply)")
    p.add_argument("--ward", required=True, help="ward id")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to wait for the gateway")
    if user:
        p.add_argument("--user", required=True, help="your name, as it goes into the audit trail")


def add_alarms_arguments(sub) -> None:
    """``wardwatch alarms list|ack`` (``report`` is added by the caller)."""
    p = sub.add_parser("list", help="list the active alarms of a ward")
    _common(p, user=False)
    p.add_argument("--bed", help="only this bed")
    p.set_defaults(func=_alarms_list)
    p = sub.add_parser("ack", help="acknowledge an alarm (by id) or all alarms of a bed")
    _common(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("alarm", nargs="?", help="alarm id, as `wardwatch alarms list` shows it")
    g.add_argument("--bed", help="acknowledge every alarm of this bed")
    p.set_defaults(func=_alarms_ack)


def add_patients_arguments(sub) -> None:
    p = sub.add_parser("admit", help="admit a patient to a bed (alarms start for that bed)")
    _common(p)
    p.add_argument("--bed", required=True)
    p.add_argument("--patient", required=True, help="the hospital's patient reference (kept only in the gateway's SQLite)")
    p.add_argument("--scale", type=int, choices=(1, 2), default=1, help="NEWS2 SpO2 scale (2: hypercapnic failure)")
    p.add_argument("--limit", action="append", default=[], metavar="CODE.KEY=VALUE", help="patient limit, e.g. spo2_low.limit=88")
    p.set_defaults(func=lambda a: _run(a, {"op": "admit", "bed": a.bed, "patient": a.patient, "scale": a.scale, "limits": a.limit}))
    p = sub.add_parser("assign", help="move an admitted patient to another bed")
    _common(p)
    p.add_argument("--patient", required=True)
    p.add_argument("--bed", required=True, help="the new bed")
    p.add_argument("--to-ward", help="the new bed's ward (default: the same ward)")
    p.set_defaults(func=lambda a: _run(a, {"op": "assign", "patient": a.patient, "bed": a.bed, "to_ward": a.to_ward}))
    p = sub.add_parser("discharge", help="discharge a patient: the bed's alarms end, patient limits revert")
    _common(p)
    p.add_argument("--patient", required=True)
    p.set_defaults(func=lambda a: _run(a, {"op": "discharge", "patient": a.patient}))
    p = sub.add_parser("limits", help="set a patient's limit overrides (replaces the previous ones)")
    _common(p)
    p.add_argument("--patient", required=True)
    p.add_argument("--limit", action="append", default=[], metavar="CODE.KEY=VALUE")
    p.add_argument("--scale", type=int, choices=(1, 2))
    p.set_defaults(func=lambda a: _run(a, {"op": "limits", "patient": a.patient, "limits": a.limit, "scale": a.scale}))
    p = sub.add_parser("list", help="the patients admitted to a ward")
    _common(p, user=False)
    p.set_defaults(func=lambda a: _run(a, {"op": "patients"}))


def add_obs_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--bed", required=True)
    p.add_argument("--rr", type=float, help="respiration rate /min")
    p.add_argument("--sbp", type=float, help="systolic blood pressure mmHg")
    p.add_argument("--acvpu", type=str.upper, choices=list("ACVPU"), help="consciousness")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--o2", action="store_true", default=None, help="on supplemental oxygen")
    g.add_argument("--air", dest="o2", action="store_false", help="on room air")
    p.set_defaults(func=lambda a: _run(a, {"op": "obs", "bed": a.bed, "rr": a.rr, "sbp": a.sbp, "acvpu": a.acvpu, "o2": a.o2}))


def _load(args) -> gwconfig.Config:
    return gwconfig.load(args.config)


def _run(args, command: dict, render=None) -> int:
    """Send ``command``; print the result as JSON, or through ``render`` unless ``--json``."""
    command = {k: v for k, v in command.items() if v is not None}
    # Read-only commands (list, patients) have no --user: nothing of theirs is audited.
    command["user"] = getattr(args, "user", None) or "-"
    try:
        result = send(_load(args), args.ward, command, args.timeout)
    except (CommandFailed, gwconfig.ConfigError) as exc:
        print(f"wardwatch: {exc}", file=sys.stderr)
        return 1
    if render is not None and not args.json:
        render(args, result)
    else:
        print(json.dumps(result, indent=None if args.json else 2))
    return 0


def _alarms_ack(args) -> int:
    command = {"op": "ack", "alarm": args.alarm} if args.alarm else {"op": "ack", "bed": args.bed}
    return _run(args, command)


def _alarms_list(args) -> int:
    return _run(args, {"op": "list", "bed": args.bed}, render=_alarms_table)


def _alarms_table(args, alarms: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"active alarms, ward {args.ward}")
    for col in ("bed", "alarm", "priority", "state", "since", "acked by", "id"):
        table.add_column(col)
    colour = {"high": "red", "medium": "yellow", "low": "cyan"}
    for a in alarms or []:
        name = a["message"] + (" [SIMULATED]" if a["simulated"] else "")
        style = "cyan" if a["kind"] == "technical" else colour[a["priority"]]
        since = time.strftime("%H:%M:%S", time.localtime(a["since_ms"] / 1000))
        table.add_row(a["bed"], name, a["priority"], a["state"], since, a["acked_by"] or "", a["id"], style=style)
    Console().print(table)
