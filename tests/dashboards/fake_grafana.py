"""A local HTTP server that stands in for Grafana in the ``dashboards push`` tests and checks
every request against Grafana's documented HTTP API.

Grafana itself is not installable on the development machine (no Debian, PyPI or npm package
ships the server), so ``wardwatch dashboards push`` is tested against this server instead. It
implements only the routes push uses, and for each it checks what Grafana's documentation says:
method and path, ``Authorization: Bearer``, ``Content-Type: application/json`` on bodies, the
required body fields and their types, and the references between objects that Grafana resolves
(a dashboard's folder, an alert rule's folder and data sources, a policy's receiver). It answers
with the documented status codes and bodies, and keeps state, so a GET returns what was stored.

Any call not listed in ``ROUTES`` and any malformed body gets 400 and is recorded in
``violations``; a test asserts that list is empty. Each route names the document it follows, in
Grafana's repository (github.com/grafana/grafana):

- ``DASHBOARD``: docs/sources/developers/http_api/dashboard.md
- ``FOLDER``: docs/sources/developers/http_api/folder.md
- ``DATASOURCE``: docs/sources/developers/http_api/data_source.md
- ``ALERTING``: docs/sources/developers/http_api/alerting_provisioning.md (the "Alerting
  provisioning API": paths, and the models ProvisionedAlertRule, AlertQuery, AlertRuleGroup,
  EmbeddedContactPoint, Route with their required fields)

Where the documents leave something open, the server follows Grafana's behaviour and says so
(``for`` is a Go duration string like ``"5m"`` in Grafana's JSON though the model table says
int64; group intervals are seconds, multiples of the 10 s base interval).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

DASHBOARD = "docs/sources/developers/http_api/dashboard.md"
FOLDER = "docs/sources/developers/http_api/folder.md"
DATASOURCE = "docs/sources/developers/http_api/data_source.md"
ALERTING = "docs/sources/developers/http_api/alerting_provisioning.md"

_UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")  # "The uid can have a maximum length of 40 characters."
_GO_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w))+$")
NO_DATA_STATES = {"Alerting", "NoData", "OK", "KeepLast"}
EXEC_ERR_STATES = {"Alerting", "Error", "OK", "KeepLast"}
# Required settings per receiver type (Grafana's notifier schemas: email needs addresses,
# webhook needs url).
RECEIVER_REQUIRED = {"email": ("addresses",), "webhook": ("url",)}


class Invalid(Exception):
    """A request that breaks the documented API: answered 400 and recorded as a violation."""


@dataclass
class Request:
    method: str
    path: str
    status: int
    headers: dict
    body: Any


def _need(obj: dict, key: str, typ, where: str, doc: str):
    if not isinstance(obj, dict) or key not in obj:
        raise Invalid(f"{where}: required field {key!r} missing ({doc})")
    val = obj[key]
    if typ is int and isinstance(val, bool) or not isinstance(val, typ):
        raise Invalid(f"{where}: {key!r} must be {getattr(typ, '__name__', typ)}, got {type(val).__name__} ({doc})")
    return val


def _opt(obj: dict, key: str, typ, where: str, doc: str):
    if key in obj and obj[key] is not None:
        return _need(obj, key, typ, where, doc)
    return None


def _uid(value: Any, where: str, doc: str) -> str:
    if not isinstance(value, str) or not _UID.match(value):
        raise Invalid(f"{where}: uid {value!r} is not 1-40 characters of [a-zA-Z0-9_-] ({doc})")
    return value


def _str_map(obj: dict, key: str, where: str):
    val = obj.get(key)
    if val is None:
        return
    if not isinstance(val, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in val.items()):
        raise Invalid(f"{where}: {key!r} must be a map of string to string ({ALERTING})")


def _no_placeholders(obj: Any, where: str):
    """Grafana's HTTP API expands no ``${VAR}``: one arriving here is a bug in the caller."""
    if isinstance(obj, str) and "${" in obj:
        raise Invalid(f"{where}: unresolved placeholder in {obj[:40]!r}")
    if isinstance(obj, dict):
        for v in obj.values():
            _no_placeholders(v, where)
    if isinstance(obj, list):
        for v in obj:
            _no_placeholders(v, where)


@dataclass
class State:
    datasources: dict = field(default_factory=dict)  # uid -> stored (no secureJsonData)
    secrets: dict = field(default_factory=dict)  # uid -> secureJsonData as received
    folders: dict = field(default_factory=dict)
    dashboards: dict = field(default_factory=dict)  # uid -> {"dashboard":..., "folderUid":...}
    rules: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)  # (folderUid, group) -> interval s
    contact_points: dict = field(default_factory=dict)
    # A fresh Grafana has a default contact point and a root policy pointing at it.
    policy: dict = field(default_factory=lambda: {"receiver": "grafana-default-email",
                                                  "group_by": ["grafana_folder", "alertname"]})
    next_id: int = 1

    def __post_init__(self):
        self.contact_points["default"] = {"uid": "default", "name": "grafana-default-email", "type": "email",
                                          "settings": {"addresses": "<example@email.com>"},
                                          "disableResolveMessage": False}

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class FakeGrafana:
    """Start with ``with FakeGrafana(token) as g:``; ``g.url`` is its base URL.

    ``requests`` lists every request (method, path, status, headers, body); ``violations``
    every departure from the documented API; ``state`` what Grafana would hold."""

    def __init__(self, token: str):
        self.token = token
        self.state = State()
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.routes: list[tuple[str, re.Pattern, Callable, str]] = [
            ("GET", re.compile(r"^/api/folders/(?P<uid>[^/]+)$"), self.get_folder, FOLDER),
            ("POST", re.compile(r"^/api/folders$"), self.post_folder, FOLDER),
            ("PUT", re.compile(r"^/api/folders/(?P<uid>[^/]+)$"), self.put_folder, FOLDER),
            ("GET", re.compile(r"^/api/dashboards/uid/(?P<uid>[^/]+)$"), self.get_dashboard, DASHBOARD),
            ("POST", re.compile(r"^/api/dashboards/db$"), self.post_dashboard, DASHBOARD),
            ("GET", re.compile(r"^/api/datasources/uid/(?P<uid>[^/]+)$"), self.get_datasource, DATASOURCE),
            ("POST", re.compile(r"^/api/datasources$"), self.post_datasource, DATASOURCE),
            ("PUT", re.compile(r"^/api/datasources/uid/(?P<uid>[^/]+)$"), self.put_datasource, DATASOURCE),
            ("GET", re.compile(r"^/api/v1/provisioning/alert-rules/(?P<uid>[^/]+)$"), self.get_rule, ALERTING),
            ("POST", re.compile(r"^/api/v1/provisioning/alert-rules$"), self.post_rule, ALERTING),
            ("PUT", re.compile(r"^/api/v1/provisioning/alert-rules/(?P<uid>[^/]+)$"), self.put_rule, ALERTING),
            ("GET", re.compile(r"^/api/v1/provisioning/folder/(?P<folder>[^/]+)/rule-groups/(?P<group>[^/]+)$"),
             self.get_group, ALERTING),
            ("PUT", re.compile(r"^/api/v1/provisioning/folder/(?P<folder>[^/]+)/rule-groups/(?P<group>[^/]+)$"),
             self.put_group, ALERTING),
            ("GET", re.compile(r"^/api/v1/provisioning/contact-points$"), self.get_contact_points, ALERTING),
            ("POST", re.compile(r"^/api/v1/provisioning/contact-points$"), self.post_contact_point, ALERTING),
            ("PUT", re.compile(r"^/api/v1/provisioning/contact-points/(?P<uid>[^/]+)$"),
             self.put_contact_point, ALERTING),
            ("GET", re.compile(r"^/api/v1/provisioning/policies$"), self.get_policy, ALERTING),
            ("PUT", re.compile(r"^/api/v1/provisioning/policies$"), self.put_policy, ALERTING),
        ]

    # ------------------------------------------------------------ server plumbing

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeGrafana":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                status, body = fake.handle(self.command, self.path, dict(self.headers.items()), raw)
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

            def log_message(self, *a):  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def handle(self, method: str, raw_path: str, headers: dict, raw: bytes) -> tuple[int, Any]:
        with self._lock:
            status, body = self._handle(method, raw_path, headers, raw)
            parsed = None
            if raw:
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = raw
            self.requests.append(Request(method, urlsplit(raw_path).path, status, headers, parsed))
            return status, body

    def _violation(self, text: str) -> tuple[int, dict]:
        self.violations.append(text)
        return 400, {"message": text}

    def _handle(self, method, raw_path, headers, raw):
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query)
        h = {k.lower(): v for k, v in headers.items()}
        auth = h.get("authorization", "")
        if not auth.startswith("Bearer "):
            self.violations.append(f"{method} {path}: no 'Authorization: Bearer' header")
            return 401, {"message": "Unauthorized"}
        if auth != f"Bearer {self.token}":
            return 401, {"message": "Unauthorized"}  # documented for every route; not a violation
        for m, pattern, fn, doc in self.routes:
            match = pattern.match(path)
            if m == method and match:
                break
        else:
            return self._violation(f"undocumented call {method} {path}")
        body = None
        if method in ("POST", "PUT"):
            if not h.get("content-type", "").startswith("application/json"):
                return self._violation(f"{method} {path}: Content-Type must be application/json ({doc})")
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                return self._violation(f"{method} {path}: body is not JSON ({doc})")
            if not isinstance(body, dict):
                return self._violation(f"{method} {path}: body must be a JSON object ({doc})")
        try:
            # Dashboards use ${var} for their own template variables; elsewhere it is a leftover.
            if body is not None and fn != self.post_dashboard:
                _no_placeholders(body, f"{method} {path}")
            return fn(body=body, query=query, headers=h, **match.groupdict())
        except Invalid as exc:
            return self._violation(str(exc))

    # ------------------------------------------------------------ folders (FOLDER)

    def _folder_out(self, f: dict) -> dict:
        return {**f, "url": f"/dashboards/f/{f['uid']}/", "hasAcl": False, "canSave": True,
                "canEdit": True, "canAdmin": True}

    def get_folder(self, uid, **_):
        f = self.state.folders.get(uid)
        return (200, self._folder_out(f)) if f else (404, {"message": "folder not found"})

    def post_folder(self, body, **_):
        where = "POST /api/folders"
        title = _need(body, "title", str, where, FOLDER)
        uid = body.get("uid")
        if uid is not None:
            _uid(uid, where, FOLDER)
        else:
            uid = f"gen{self.state.next_id}"
        _opt(body, "parentUid", str, where, FOLDER)
        if uid in self.state.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        self.state.folders[uid] = {"id": self.state.new_id(), "uid": uid, "title": title, "version": 1}
        return 200, self._folder_out(self.state.folders[uid])

    def put_folder(self, uid, body, **_):
        where = f"PUT /api/folders/{uid}"
        title = _need(body, "title", str, where, FOLDER)
        version = _opt(body, "version", int, where, FOLDER)
        overwrite = _opt(body, "overwrite", bool, where, FOLDER)
        f = self.state.folders.get(uid)
        if f is None:
            return 404, {"message": "folder not found"}
        if not overwrite and version != f["version"]:
            raise Invalid(f"{where}: give the current 'version' or 'overwrite': true ({FOLDER})")
        f.update(title=title, version=f["version"] + 1)
        return 200, self._folder_out(f)

    # ------------------------------------------------------------ dashboards (DASHBOARD)

    def get_dashboard(self, uid, **_):
        d = self.state.dashboards.get(uid)
        if d is None:
            return 404, {"message": "Dashboard not found"}
        return 200, {"dashboard": copy.deepcopy(d["dashboard"]),
                     "meta": {"isStarred": False, "url": f"/d/{uid}/", "folderUid": d["folderUid"],
                              "folderId": self.state.folders.get(d["folderUid"], {}).get("id", 0)}}

    def post_dashboard(self, body, **_):
        where = "POST /api/dashboards/db"
        dash = _need(body, "dashboard", dict, where, DASHBOARD)
        uid = _uid(dash.get("uid"), where + " dashboard", DASHBOARD)
        _need(dash, "title", str, where + " dashboard", DASHBOARD)
        if dash.get("id") is not None and not isinstance(dash["id"], int):
            raise Invalid(f"{where}: dashboard.id must be null or an integer ({DASHBOARD})")
        overwrite = _opt(body, "overwrite", bool, where, DASHBOARD)
        _opt(body, "message", str, where, DASHBOARD)
        if "folderUid" not in body and "folderId" not in body:
            raise Invalid(f"{where}: no folderUid/folderId: the dashboard would be moved to the root level ({DASHBOARD})")
        folder_uid = _need(body, "folderUid", str, where, DASHBOARD)
        if folder_uid not in self.state.folders:
            raise Invalid(f"{where}: folder {folder_uid!r} does not exist (create it first with POST /api/folders)")
        old = self.state.dashboards.get(uid)
        if old is not None and not overwrite:
            if dash.get("version") != old["dashboard"]["version"]:
                return 412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
        stored = copy.deepcopy(dash)
        stored["id"] = old["dashboard"]["id"] if old else self.state.new_id()
        stored["version"] = old["dashboard"]["version"] + 1 if old else 1
        self.state.dashboards[uid] = {"dashboard": stored, "folderUid": folder_uid}
        return 200, {"id": stored["id"], "uid": uid, "url": f"/d/{uid}/", "status": "success",
                     "version": stored["version"], "slug": uid}

    # ------------------------------------------------------------ data sources (DATASOURCE)

    def get_datasource(self, uid, **_):
        ds = self.state.datasources.get(uid)
        return (200, copy.deepcopy(ds)) if ds else (404, {"message": "Data source not found"})

    def _check_datasource(self, body, where):
        _need(body, "name", str, where, DATASOURCE)
        _need(body, "type", str, where, DATASOURCE)
        _need(body, "url", str, where, DATASOURCE)
        access = _opt(body, "access", str, where, DATASOURCE)
        if access not in (None, "proxy", "direct"):
            raise Invalid(f"{where}: access must be proxy or direct ({DATASOURCE})")
        _opt(body, "jsonData", dict, where, DATASOURCE)
        sec = _opt(body, "secureJsonData", dict, where, DATASOURCE) or {}
        if not all(isinstance(v, str) for v in sec.values()):
            raise Invalid(f"{where}: secureJsonData values must be strings ({DATASOURCE})")
        for k in ("user", "database", "basicAuthUser"):
            _opt(body, k, str, where, DATASOURCE)
        for k in ("isDefault", "basicAuth", "withCredentials"):
            _opt(body, k, bool, where, DATASOURCE)

    def _store_datasource(self, uid, body, ds_id, version):
        sec = body.get("secureJsonData") or {}
        old_fields = self.state.datasources.get(uid, {}).get("secureJsonFields", {})
        stored = {k: v for k, v in body.items() if k != "secureJsonData"}
        stored.update(id=ds_id, uid=uid, orgId=1, version=version, readOnly=False,
                      secureJsonFields={**old_fields, **{k: True for k in sec}})
        self.state.datasources[uid] = stored
        if sec:
            self.state.secrets[uid] = {**self.state.secrets.get(uid, {}), **sec}
        return stored

    def post_datasource(self, body, **_):
        where = "POST /api/datasources"
        self._check_datasource(body, where)
        uid = _uid(body.get("uid"), where, DATASOURCE) if body.get("uid") else f"gen{self.state.next_id}"
        if uid in self.state.datasources or any(d["name"] == body["name"] for d in self.state.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        stored = self._store_datasource(uid, body, self.state.new_id(), 1)
        return 200, {"datasource": stored, "id": stored["id"], "message": "Datasource added", "name": stored["name"]}

    def put_datasource(self, uid, body, **_):
        where = f"PUT /api/datasources/uid/{uid}"
        self._check_datasource(body, where)
        old = self.state.datasources.get(uid)
        if old is None:
            return 404, {"message": "Data source not found"}
        stored = self._store_datasource(uid, body, old["id"], old["version"] + 1)
        return 200, {"datasource": stored, "id": stored["id"], "message": "Datasource updated", "name": stored["name"]}

    # ------------------------------------------------------------ alert rules (ALERTING)

    def _check_rule(self, r: dict, where: str) -> None:
        """ProvisionedAlertRule: required condition, data, execErrState, folderUID, for,
        noDataState, orgID, ruleGroup, title."""
        if not isinstance(r, dict):
            raise Invalid(f"{where}: a rule must be an object ({ALERTING})")
        cond = _need(r, "condition", str, where, ALERTING)
        data = _need(r, "data", list, where, ALERTING)
        if not data:
            raise Invalid(f"{where}: data must hold at least one AlertQuery ({ALERTING})")
        refs = set()
        for i, q in enumerate(data):
            w = f"{where} data[{i}]"
            refs.add(_need(q, "refId", str, w, ALERTING))
            ds = _need(q, "datasourceUid", str, w, ALERTING)
            _need(q, "model", dict, w, ALERTING)
            rtr = _opt(q, "relativeTimeRange", dict, w, ALERTING)
            if rtr is not None:
                for k in ("from", "to"):
                    _need(rtr, k, int, w + " relativeTimeRange", ALERTING)
            if ds != "__expr__" and ds not in self.state.datasources:
                raise Invalid(f"{w}: data source {ds!r} does not exist")
        if cond not in refs:
            raise Invalid(f"{where}: condition {cond!r} is not the refId of a query ({ALERTING})")
        if _need(r, "execErrState", str, where, ALERTING) not in EXEC_ERR_STATES:
            raise Invalid(f"{where}: execErrState must be one of {sorted(EXEC_ERR_STATES)}")
        if _need(r, "noDataState", str, where, ALERTING) not in NO_DATA_STATES:
            raise Invalid(f"{where}: noDataState must be one of {sorted(NO_DATA_STATES)}")
        folder = _need(r, "folderUID", str, where, ALERTING)
        if folder not in self.state.folders:
            raise Invalid(f"{where}: folder {folder!r} does not exist")
        dur = r.get("for")
        if not (isinstance(dur, int) and not isinstance(dur, bool) or isinstance(dur, str) and _GO_DURATION.match(dur)):
            raise Invalid(f"{where}: 'for' must be a duration, e.g. \"5m\" ({ALERTING})")
        _need(r, "orgID", int, where, ALERTING)
        _need(r, "ruleGroup", str, where, ALERTING)
        _need(r, "title", str, where, ALERTING)
        if r.get("uid") is not None:
            _uid(r["uid"], where, ALERTING)
        _str_map(r, "labels", where)
        _str_map(r, "annotations", where)
        _opt(r, "isPaused", bool, where, ALERTING)

    def _store_rule(self, r: dict, headers: dict) -> dict:
        uid = r.get("uid") or f"gen{self.state.next_id}"
        old = self.state.rules.get(uid)
        stored = {**copy.deepcopy(r), "uid": uid, "id": old["id"] if old else self.state.new_id(),
                  "updated": "2026-01-01T00:00:00Z",
                  # Documented header: without it Grafana marks the rule as provisioned (locked in the UI).
                  "provenance": "" if headers.get("x-disable-provenance") else "api"}
        self.state.rules[uid] = stored
        self.state.groups.setdefault((stored["folderUID"], stored["ruleGroup"]), 60)
        return stored

    def get_rule(self, uid, **_):
        r = self.state.rules.get(uid)
        return (200, copy.deepcopy(r)) if r else (404, None)

    def post_rule(self, body, headers, **_):
        where = "POST /api/v1/provisioning/alert-rules"
        self._check_rule(body, where)
        if body.get("uid") in self.state.rules:
            raise Invalid(f"{where}: a rule with uid {body['uid']!r} exists; update it with PUT ({ALERTING})")
        return 201, self._store_rule(body, headers)

    def put_rule(self, uid, body, headers, **_):
        where = f"PUT /api/v1/provisioning/alert-rules/{uid}"
        self._check_rule(body, where)
        if body.get("uid") not in (None, uid):
            raise Invalid(f"{where}: body uid {body.get('uid')!r} differs from the path")
        if uid not in self.state.rules:
            return 404, None
        return 200, self._store_rule({**body, "uid": uid}, headers)

    def get_group(self, folder, group, **_):
        if (folder, group) not in self.state.groups:
            return 404, None
        rules = [copy.deepcopy(r) for r in self.state.rules.values()
                 if r["folderUID"] == folder and r["ruleGroup"] == group]
        return 200, {"title": group, "folderUid": folder, "interval": self.state.groups[(folder, group)],
                     "rules": rules}

    def put_group(self, folder, group, body, headers, **_):
        where = f"PUT /api/v1/provisioning/folder/{folder}/rule-groups/{group}"
        interval = _need(body, "interval", int, where, ALERTING)
        if interval <= 0 or interval % 10:
            raise Invalid(f"{where}: interval {interval} s is not a positive multiple of the 10 s base interval")
        if body.get("title") not in (None, group) or body.get("folderUid") not in (None, folder):
            raise Invalid(f"{where}: body title/folderUid differ from the path")
        rules = _need(body, "rules", list, where, ALERTING)
        for i, r in enumerate(rules):
            self._check_rule(r, f"{where} rules[{i}]")
            if r["ruleGroup"] != group or r["folderUID"] != folder:
                raise Invalid(f"{where} rules[{i}]: ruleGroup/folderUID differ from the path")
        if folder not in self.state.folders:
            return 404, None
        keep = {r.get("uid") for r in rules}
        for uid in [u for u, r in self.state.rules.items()
                    if r["folderUID"] == folder and r["ruleGroup"] == group and u not in keep]:
            del self.state.rules[uid]  # the group body replaces the group's rules
        for r in rules:
            self._store_rule(r, headers)
        self.state.groups[(folder, group)] = interval
        return self.get_group(folder, group)

    # ------------------------------------------------------------ contact points and policy (ALERTING)

    def _check_contact_point(self, c: dict, where: str) -> None:
        typ = _need(c, "type", str, where, ALERTING)
        settings = _need(c, "settings", dict, where, ALERTING)
        _opt(c, "name", str, where, ALERTING)
        _opt(c, "disableResolveMessage", bool, where, ALERTING)
        for k in RECEIVER_REQUIRED.get(typ, ()):
            if not isinstance(settings.get(k), str) or not settings[k]:
                raise Invalid(f"{where}: a {typ} contact point needs settings.{k}")
        if c.get("uid") is not None:
            _uid(c["uid"], where, ALERTING)

    def get_contact_points(self, query, **_):
        name = (query.get("name") or [None])[0]
        return 200, [copy.deepcopy(c) for c in self.state.contact_points.values() if name in (None, c["name"])]

    def post_contact_point(self, body, headers, **_):
        where = "POST /api/v1/provisioning/contact-points"
        self._check_contact_point(body, where)
        uid = body.get("uid") or f"gen{self.state.next_id}"
        if uid in self.state.contact_points:
            raise Invalid(f"{where}: contact point {uid!r} exists; update it with PUT ({ALERTING})")
        stored = {**copy.deepcopy(body), "uid": uid,
                  "provenance": "" if headers.get("x-disable-provenance") else "api"}
        self.state.contact_points[uid] = stored
        return 202, stored

    def put_contact_point(self, uid, body, headers, **_):
        where = f"PUT /api/v1/provisioning/contact-points/{uid}"
        self._check_contact_point(body, where)
        if uid not in self.state.contact_points:
            raise Invalid(f"{where}: no contact point {uid!r}")
        self.state.contact_points[uid] = {**copy.deepcopy(body), "uid": uid,
                                          "provenance": "" if headers.get("x-disable-provenance") else "api"}
        return 202, {"message": "contactpoint updated"}

    def get_policy(self, **_):
        return 200, copy.deepcopy(self.state.policy)

    def _check_route(self, r: dict, where: str, root: bool) -> None:
        receiver = _need(r, "receiver", str, where, ALERTING) if root else _opt(r, "receiver", str, where, ALERTING)
        names = {c["name"] for c in self.state.contact_points.values()}
        if receiver is not None and receiver not in names:
            raise Invalid(f"{where}: receiver {receiver!r} is not a contact point")
        gb = _opt(r, "group_by", list, where, ALERTING)
        if gb is not None and not all(isinstance(x, str) for x in gb):
            raise Invalid(f"{where}: group_by must be a list of strings ({ALERTING})")
        for k in ("group_wait", "group_interval", "repeat_interval"):
            v = _opt(r, k, str, where, ALERTING)
            if v is not None and not _GO_DURATION.match(v):
                raise Invalid(f"{where}: {k} {v!r} is not a duration")
        for i, sub in enumerate(_opt(r, "routes", list, where, ALERTING) or []):
            self._check_route(sub, f"{where} routes[{i}]", root=False)

    def put_policy(self, body, headers, **_):
        where = "PUT /api/v1/provisioning/policies"
        self._check_route(body, where, root=True)
        self.state.policy = {**copy.deepcopy(body),
                             "provenance": "" if headers.get("x-disable-provenance") else "api"}
        return 202, {"message": "policies updated"}
