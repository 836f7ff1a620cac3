"""``wardwatch dashboards push``: upload this provisioning tree to a running Grafana over its
HTTP API, with ``grafana-client``, for sites that do not use file provisioning.

Who calls it: ``gateway/cli/main.py`` mounts ``add_arguments``/``run``; the tests call ``main``.

What it uploads, each with a fixed uid so that a second push finds the first one's objects:

- the data source (``provisioning/datasources/*.yaml``, uid ``wardwatch-influx``), its
  ``${VAR}`` placeholders resolved from the environment or the ``--influx-*`` options;
- the folder (uid ``wardwatch``, title ``--folder``);
- every dashboard in ``json/`` (``POST /api/dashboards/db``, ``overwrite: true``, ``folderUid``);
- the alert rules, their groups' evaluation intervals, the contact point and the notification
  policy (``provisioning/alerting/*.yaml``) through the alerting provisioning API, with
  ``X-Disable-Provenance: true`` so that they stay editable in Grafana's UI like hand-made ones
  (without it Grafana locks them; a later push overwrites UI edits either way).

Idempotent: it GETs every object first, compares what it would send with what is there (a
dashboard without ``id``/``version``; other objects on the keys it sends) and writes only what
differs. ``--dry-run`` stops after the GETs and prints the plan. The Grafana token and the
data source password are never printed.

Layout: a pure core (placeholder resolution, API bodies, ``decide``) tested from tables, and a
shell (``load_tree``, ``plan``, ``apply``, ``main``) that reads files and talks HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

HERE = Path(__file__).resolve().parent
FOLDER_UID = "wardwatch"
DEFAULT_FOLDER = "WardWatch"
DS_UID = "wardwatch-influx"

# The data source's placeholders and the options that may give them (besides the environment).
INFLUX_OPTIONS = {
    "WARDWATCH_INFLUX_URL": "influx_url",
    "WARDWATCH_INFLUX_DATABASE": "influx_database",
    "WARDWATCH_INFLUX_USER": "influx_user",
}

# Only the braced form: the tree uses it for every variable, and alert templates use bare
# ``$labels``/``$values``, which are Grafana template syntax, not variables.
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class PushError(Exception):
    """A problem found before or while pushing; its text is the whole message for the user."""


# ---------------------------------------------------------------- pure core


def placeholders(obj: Any) -> set[str]:
    """Names of every ``${VAR}`` in the strings of ``obj`` (nested dicts/lists).

    Grafana's file provisioning expands them from its environment; the HTTP API expands
    nothing, so push must."""
    found: set[str] = set()
    if isinstance(obj, str):
        for m in _PLACEHOLDER.finditer(obj):
            found.add(m.group(1))
    elif isinstance(obj, dict):
        for v in obj.values():
            found |= placeholders(v)
    elif isinstance(obj, list):
        for v in obj:
            found |= placeholders(v)
    return found


def resolve(obj: Any, values: Mapping[str, str]) -> Any:
    """A copy of ``obj`` with every placeholder replaced from ``values``.

    Raises PushError naming every variable ``values`` lacks (never their values), so that no
    literal ``${VAR}`` reaches Grafana as a URL, address or password."""
    missing = sorted(n for n in placeholders(obj) if n not in values)
    if missing:
        raise PushError("unresolved placeholders: " + ", ".join(missing)
                        + " (set them in the environment or with the matching options)")

    def sub(o: Any) -> Any:
        if isinstance(o, str):
            return _PLACEHOLDER.sub(lambda m: values[m.group(1)], o)
        if isinstance(o, dict):
            return {k: sub(v) for k, v in o.items()}
        if isinstance(o, list):
            return [sub(v) for v in o]
        return o

    return sub(obj)


def duration_seconds(text: str | int) -> int:
    """``"1m"`` -> 60. Grafana's provisioning durations (``interval``, ``for``); ints pass."""
    if isinstance(text, int):
        return text
    m = _DURATION.match(text)
    if not m:
        raise PushError(f"not a duration: {text!r} (expected e.g. 30s, 5m, 1h)")
    return int(int(m.group(1)) * _SECONDS[m.group(2)])


def datasource_body(ds: dict) -> dict:
    """Data source API body (``POST /api/datasources``) from a resolved provisioning entry.

    ``editable`` is a file-provisioning key with no API counterpart, so it is left out."""
    body = {k: ds[k] for k in ("uid", "name", "type", "access", "url", "user", "isDefault",
                               "jsonData", "secureJsonData", "basicAuth", "basicAuthUser",
                               "database", "withCredentials") if k in ds}
    return body


def dashboard_body(dash: dict, folder_uid: str) -> dict:
    """``POST /api/dashboards/db`` body: the model with ``id`` null (matched by uid), saved
    into ``folder_uid``, ``overwrite`` so an existing dashboard with this uid is replaced."""
    model = {k: v for k, v in dash.items() if k not in ("id", "version")}
    model["id"] = None
    return {"dashboard": model, "folderUid": folder_uid, "overwrite": True,
            "message": "wardwatch dashboards push"}


def alert_rule_body(rule: dict, group: dict, folder_uid: str) -> dict:
    """A ``ProvisionedAlertRule`` (alerting provisioning API) from a rule of the file format.

    The file names its folder by title and its group by ``name``; the API wants ``folderUID``,
    ``ruleGroup`` and ``orgID``."""
    body = {
        "uid": rule["uid"],
        "title": rule["title"],
        "condition": rule["condition"],
        "data": rule["data"],
        "folderUID": folder_uid,
        "ruleGroup": group["name"],
        "for": rule.get("for", "0s"),
        "noDataState": rule.get("noDataState", "NoData"),
        "execErrState": rule.get("execErrState", "Error"),
        "orgID": group.get("orgId", 1),
        "annotations": rule.get("annotations", {}),
        "labels": rule.get("labels", {}),
        "isPaused": rule.get("isPaused", False),
    }
    return body


def rule_group_body(group: dict, folder_uid: str, rules: list[dict]) -> dict:
    """An ``AlertRuleGroup`` for ``PUT .../folder/{uid}/rule-groups/{group}``: interval in s."""
    return {"title": group["name"], "folderUid": folder_uid,
            "interval": duration_seconds(group.get("interval", "1m")), "rules": rules}


def contact_point_bodies(cp: dict) -> list[dict]:
    """One ``EmbeddedContactPoint`` per receiver of a file-format contact point (the API's unit
    is the receiver; receivers sharing ``name`` form the contact point)."""
    return [{"uid": r["uid"], "name": cp["name"], "type": r["type"], "settings": r.get("settings", {}),
             "disableResolveMessage": r.get("disableResolveMessage", False)} for r in cp["receivers"]]


def policy_body(policy: dict) -> dict:
    """The notification policy tree's root ``Route`` from a file-format policy (drops orgId)."""
    return {k: v for k, v in policy.items() if k != "orgId"}


def _same(desired: Any, existing: Any) -> bool:
    """True when every key ``desired`` sets has the same value in ``existing`` (recursively for
    dicts); Grafana adds keys of its own (ids, provenance, timestamps) that are not ours."""
    if isinstance(desired, dict):
        return isinstance(existing, dict) and all(
            k in existing and _same(v, existing[k]) for k, v in desired.items())
    if isinstance(desired, list):
        return isinstance(existing, list) and len(desired) == len(existing) and all(
            _same(d, e) for d, e in zip(desired, existing))
    if isinstance(desired, (int, float)) and isinstance(existing, (int, float)) \
            and not isinstance(desired, bool) and not isinstance(existing, bool):
        return desired == existing
    return desired == existing and type(desired) is type(existing)


def decide(kind: str, desired: dict, existing: dict | None) -> str:
    """``"create"``, ``"update"`` or ``"unchanged"`` for one object.

    ``existing`` is what Grafana returned for this uid (None: not found):
    - dashboard: the GET body ``{dashboard, meta}``; compared without ``id`` and ``version``,
      and on the folder;
    - datasource: secure values are never returned, only ``secureJsonFields`` names, so a
      changed password is not seen (``--update-secrets`` forces an update);
    - anything else: the keys sent must hold the same values.
    """
    if existing is None:
        return "create"
    if kind == "dashboard":
        want = {k: v for k, v in desired["dashboard"].items() if k not in ("id", "version")}
        have = {k: v for k, v in existing.get("dashboard", {}).items() if k not in ("id", "version")}
        same = want == have and existing.get("meta", {}).get("folderUid") == desired["folderUid"]
        return "unchanged" if same else "update"
    if kind == "datasource":
        public = {k: v for k, v in desired.items() if k != "secureJsonData"}
        fields = existing.get("secureJsonFields") or {}
        secure_ok = all(fields.get(k) for k in (desired.get("secureJsonData") or {}))
        return "unchanged" if _same(public, existing) and secure_ok else "update"
    if kind == "rule-group":
        return "unchanged" if existing.get("interval") == desired["interval"] else "update"
    return "unchanged" if _same(desired, existing) else "update"


@dataclass
class Item:
    """One object to push: what it is, what would be sent, and what the plan says."""

    kind: str  # datasource | folder | dashboard | alert-rule | rule-group | contact-point | policy
    uid: str
    title: str
    body: dict
    op: str = ""


@dataclass
class Tree:
    """What a push sends, already resolved: built by ``load_tree`` from the files."""

    datasource: dict
    folder: dict
    dashboards: list[dict] = field(default_factory=list)
    rules: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    contact_points: list[dict] = field(default_factory=list)
    policy: dict | None = None


def build_tree(ds_yaml: dict, alerting_yaml: dict, dashboards: list[dict], folder_title: str,
               values: Mapping[str, str]) -> Tree:
    """Pure: the parsed provisioning files and placeholder values -> the bodies to send.

    Raises PushError for any unresolved placeholder, listing all of them at once."""
    ds = [d for d in ds_yaml.get("datasources", []) if d.get("uid") == DS_UID]
    if not ds:
        raise PushError(f"no data source with uid {DS_UID} in the provisioning tree")
    missing = set()
    for part in (ds[0], alerting_yaml):
        missing |= {n for n in placeholders(part) if n not in values}
    if missing:
        raise PushError("unresolved placeholders: " + ", ".join(sorted(missing))
                        + " (set them in the environment or with the matching options)")
    ds_res = resolve(ds[0], values)
    al = resolve(alerting_yaml, values)
    tree = Tree(datasource=datasource_body(ds_res), folder={"uid": FOLDER_UID, "title": folder_title})
    tree.dashboards = [dashboard_body(d, FOLDER_UID) for d in dashboards]
    for g in al.get("groups", []):
        rules = [alert_rule_body(r, g, FOLDER_UID) for r in g.get("rules", [])]
        tree.rules += rules
        tree.groups.append(rule_group_body(g, FOLDER_UID, rules))
    for cp in al.get("contactPoints", []):
        tree.contact_points += contact_point_bodies(cp)
    policies = al.get("policies", [])
    tree.policy = policy_body(policies[0]) if policies else None
    return tree


# ---------------------------------------------------------------- shell


def load_tree(root: Path, folder_title: str, values: Mapping[str, str]) -> Tree:
    """Read ``root``'s provisioning YAML and dashboard JSON (sorted by file name)."""
    import yaml

    def one_yaml(sub: str) -> dict:
        files = sorted((root / "provisioning" / sub).glob("*.yaml"))
        if len(files) != 1:
            raise PushError(f"expected one YAML file in {root / 'provisioning' / sub}, found {len(files)}")
        return yaml.safe_load(files[0].read_text())

    dashboards = [json.loads(p.read_text()) for p in sorted((root / "json").glob("*.json"))]
    if not dashboards:
        raise PushError(f"no dashboards in {root / 'json'}")
    return build_tree(one_yaml("datasources"), one_yaml("alerting"), dashboards, folder_title, values)


def _get_or_none(call: Callable[[], Any]) -> Any:
    """Run a GET; Grafana's documented 404 means "not there" (None)."""
    from grafana_client.client import GrafanaClientError

    try:
        return call()
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return None
        raise


def plan(api, tree: Tree, update_secrets: bool = False, with_policy: bool = True) -> list[Item]:
    """GET every object and decide what to do with it. Issues GET requests only."""
    ap = api.alertingprovisioning
    items: list[Item] = []

    ds = tree.datasource
    item = Item("datasource", ds["uid"], ds["name"], ds)
    item.op = decide("datasource", ds, _get_or_none(lambda: api.datasource.get_datasource_by_uid(ds["uid"])))
    if update_secrets and item.op == "unchanged" and ds.get("secureJsonData"):
        item.op = "update"
    items.append(item)

    f = tree.folder
    items.append(Item("folder", f["uid"], f["title"], f,
                      decide("folder", f, _get_or_none(lambda: api.folder.get_folder(f["uid"])))))

    for d in tree.dashboards:
        uid = d["dashboard"]["uid"]
        have = _get_or_none(lambda: api.dashboard.get_dashboard(uid))
        items.append(Item("dashboard", uid, d["dashboard"]["title"], d, decide("dashboard", d, have)))

    for r in tree.rules:
        have = _get_or_none(lambda: ap.get_alertrule(r["uid"]))
        items.append(Item("alert-rule", r["uid"], r["title"], r, decide("alert-rule", r, have)))

    for g in tree.groups:
        have = _get_or_none(lambda: ap.get_rule_group(g["folderUid"], g["title"]))
        # A group that does not exist yet is made by its rules' POSTs; its interval is then set.
        op = decide("rule-group", g, have)
        items.append(Item("rule-group", g["title"], f"interval {g['interval']}s", g, op))

    if tree.contact_points:
        existing = {c.get("uid"): c for c in (ap.get_contactpoints() or [])}
        for c in tree.contact_points:
            items.append(Item("contact-point", c["uid"], f"{c['name']} ({c['type']})", c,
                              decide("contact-point", c, existing.get(c["uid"]))))

    if tree.policy is not None and with_policy:
        have = ap.get_notification_policy_tree()
        items.append(Item("policy", "root", f"receiver {tree.policy.get('receiver')}", tree.policy,
                          decide("policy", tree.policy, have)))
    return items


def apply(api, items: list[Item]) -> None:
    """Write what ``plan`` marked create/update, in dependency order (data source and folder
    before the dashboards and rules that name them; contact points before the policy)."""
    ap = api.alertingprovisioning
    for it in items:
        if it.op == "unchanged":
            continue
        b = it.body
        if it.kind == "datasource":
            if it.op == "create":
                api.datasource.create_datasource(b)
            else:
                api.datasource.update_datasource_by_uid(it.uid, b)
        elif it.kind == "folder":
            if it.op == "create":
                api.folder.create_folder(b["title"], uid=b["uid"])
            else:
                api.folder.update_folder(it.uid, title=b["title"], overwrite=True)
        elif it.kind == "dashboard":
            api.dashboard.update_dashboard(b)
        elif it.kind == "alert-rule":
            if it.op == "create":
                ap.create_alertrule(b, disable_provenance=True)
            else:
                ap.update_alertrule(it.uid, b, disable_provenance=True)
        elif it.kind == "rule-group":
            ap.update_rule_group(b["folderUid"], b["title"], b, disable_provenance=True)
        elif it.kind == "contact-point":
            if it.op == "create":
                ap.create_contactpoint(b, disable_provenance=True)
            else:
                ap.update_contactpoint(it.uid, b, disable_provenance=True)
        elif it.kind == "policy":
            ap.set_notification_policy_tree(b, disable_provenance=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``wardwatch dashboards push``."""
    p.description = ("Upload the WardWatch data source, folder, dashboards, alert rules, contact point and "
                     "notification policy to a running Grafana; only what differs is written.")
    p.epilog = ("The token comes from --token, --token-file or GRAFANA_TOKEN and is never printed. "
                "${VAR} placeholders of the provisioning YAML are filled from the environment "
                "(WARDWATCH_INFLUX_URL, _DATABASE, _USER, _PASSWORD, WARDWATCH_ALERT_EMAIL, "
                "WARDWATCH_ALERT_WEBHOOK_URL) or the options below; push refuses to send one unresolved.")
    p.add_argument("--url", required=True, help="Grafana's base URL, e.g. https://grafana.example:3000")
    p.add_argument("--token", help="service account token (visible in the process list: prefer "
                                    "--token-file or GRAFANA_TOKEN)")
    p.add_argument("--token-file", type=Path, metavar="FILE", help="file holding the token")
    p.add_argument("--folder", default=DEFAULT_FOLDER, help="folder title (its uid is always 'wardwatch')")
    p.add_argument("--dry-run", action="store_true", help="print create/update/unchanged per object; write nothing")
    p.add_argument("--tree", type=Path, default=HERE, help="the provisioning tree (default: this dashboards/ folder)")
    p.add_argument("--influx-url", help="InfluxDB URL as Grafana reaches it (else WARDWATCH_INFLUX_URL)")
    p.add_argument("--influx-database", help="InfluxQL database (else WARDWATCH_INFLUX_DATABASE)")
    p.add_argument("--influx-user", help="InfluxDB user (else WARDWATCH_INFLUX_USER)")
    p.add_argument("--influx-password-file", type=Path, metavar="FILE",
                   help="file holding the InfluxDB password (else WARDWATCH_INFLUX_PASSWORD)")
    p.add_argument("--update-secrets", action="store_true",
                   help="update the data source even if only its password may have changed (Grafana never returns it)")
    p.add_argument("--no-policy", action="store_true",
                   help="leave the notification policy tree alone (push replaces the organisation's whole tree)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per-request timeout")


def _read_secret(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise PushError(f"cannot read the {what} file {path}: {exc.strerror}") from None


def _token(args) -> str:
    if args.token:
        return args.token
    if args.token_file:
        return _read_secret(args.token_file, "token")
    tok = os.environ.get("GRAFANA_TOKEN", "")
    if not tok:
        raise PushError("no token: give --token, --token-file or GRAFANA_TOKEN")
    return tok


def _values(args, env: Mapping[str, str]) -> dict[str, str]:
    values = dict(env)
    for var, opt in INFLUX_OPTIONS.items():
        if getattr(args, opt, None) is not None:
            values[var] = getattr(args, opt)
    if args.influx_password_file is not None:
        values["WARDWATCH_INFLUX_PASSWORD"] = _read_secret(args.influx_password_file, "InfluxDB password")
    return values


def _without_userinfo(url: str) -> str:
    """``url`` as printed: a ``user:password@`` part is dropped, it may hold a secret."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def run(args, out=None, env: Mapping[str, str] | None = None) -> int:
    """Plan, print, and (unless ``--dry-run``) apply. 0 on success, 1 on any error, with one
    message on stderr that never contains the token."""
    out = out or sys.stdout
    err = sys.stderr
    env = os.environ if env is None else env
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException, GrafanaUnauthorizedError
    import niquests

    url = args.url.rstrip("/") + "/"  # grafana-client appends "api" to the path as is
    shown = _without_userinfo(args.url)
    try:
        token = _token(args)
        tree = load_tree(args.tree, args.folder, _values(args, env))
        api = GrafanaApi.from_url(url, credential=token, timeout=args.timeout)
        items = plan(api, tree, update_secrets=args.update_secrets, with_policy=not args.no_policy)
        for it in items:
            print(f"{it.op:<9} {it.kind:<13} {it.uid:<22} {it.title}", file=out)
        counts = {op: sum(1 for i in items if i.op == op) for op in ("create", "update", "unchanged")}
        summary = f"{counts['create']} to create, {counts['update']} to update, {counts['unchanged']} unchanged"
        if args.dry_run:
            print(f"dry run: {summary}; nothing written to {shown}", file=out)
            return 0
        apply(api, items)
        print(f"pushed to {shown}: {summary}", file=out)
        return 0
    except PushError as exc:
        print(f"wardwatch dashboards push: {exc}", file=err)
    except GrafanaUnauthorizedError:
        print(f"wardwatch dashboards push: Grafana at {shown} refused the token (401 Unauthorized): "
              "check --token, --token-file or GRAFANA_TOKEN", file=err)
    except GrafanaException as exc:
        print(f"wardwatch dashboards push: Grafana at {shown}: {exc.message}", file=err)
    except niquests.exceptions.ConnectionError as exc:
        print(f"wardwatch dashboards push: cannot reach {shown}: {type(exc).__name__}", file=err)
    return 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wardwatch dashboards push", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))
