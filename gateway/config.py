"""Gateway configuration: a TOML file, then environment overrides, validated by msgspec.

Any error names the key, and for the file also the line: ``config.toml:7: mqtt.port:
Expected `int`, got `str```. Overrides are ``WARDWATCH_<SECTION>_<KEY>``, e.g.
``WARDWATCH_MQTT_PORT=8883`` or ``WARDWATCH_INFLUX_TOKEN=...``. Secrets come from the
environment or from ``*_file`` keys pointing at files outside the repo; they are never
logged (``redacted()`` is what gets printed). A ``*_file`` value ``credential:NAME`` is the
file NAME in ``$CREDENTIALS_DIRECTORY``, where systemd puts what the unit's
``LoadCredential=NAME:PATH`` loads (``wardwatch provision gateway`` sets
``WARDWATCH_MQTT_PASSWORD_FILE=credential:mqtt-password`` and
``WARDWATCH_INFLUX_TOKEN_FILE=credential:influx-token``); it is resolved when the config is
loaded, and without that variable loading fails naming the key. ``[[notify.routes]]``
``urls_file`` (apprise URLs, docs/alarms.md "Notifications") takes ``credential:NAME`` too.
"""

from __future__ import annotations

import os
import re
import tomllib
import urllib.parse
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from .clinical.rules import Limits, LimitsError
from .contract import WARD_PATTERN
from .tomlkeys import error_key, error_message, located

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class Mqtt(msgspec.Struct, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Port = 1883
    username: str = "wardwatch-gateway"
    password: str = ""
    password_file: str = ""
    tls: bool = False
    cafile: str = ""
    client_id: str = "wardwatch-gateway"
    prefix: str = "wardwatch/v1"
    # Wards this instance serves; "+" = all. Disjoint sets let several gateways share a broker.
    wards: list[Annotated[str, msgspec.Meta(pattern=rf"^(\+|{WARD_PATTERN})$")]] = msgspec.field(
        default_factory=lambda: ["+"]
    )
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 30
    # Persistent session: the broker keeps our subscription and queued messages this long.
    session_expiry_s: Annotated[int, msgspec.Meta(ge=3600)] = 86400
    # At most one end-to-end delivery watermark per device this often (docs/protocol.md).
    watermark_interval_ms: Annotated[int, msgspec.Meta(ge=100, le=60_000)] = 1000


class Influx(msgspec.Struct, forbid_unknown_fields=True):
    url: str = "http://127.0.0.1:8086"
    org: str = "wardwatch"
    bucket: str = "wardwatch/autogen"
    token: str = ""
    token_file: str = ""
    batch_size: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 5000
    flush_interval_ms: Annotated[int, msgspec.Meta(ge=1, le=60_000)] = 100
    timeout_ms: Annotated[int, msgspec.Meta(ge=100, le=600_000)] = 10_000


class SpoolCfg(msgspec.Struct, forbid_unknown_fields=True):
    max_bytes: Positive = 2 * 1024**3


class Registry(msgspec.Struct, forbid_unknown_fields=True):
    file: str = ""


class Health(msgspec.Struct, forbid_unknown_fields=True):
    listen: str = "127.0.0.1:8780"


class Alarms(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    # Ward/bed limit overrides (gateway/clinical/rules.py); empty: the docs/clinical.md defaults.
    limits_file: str = ""
    remind_s: Annotated[float, msgspec.Meta(ge=10, le=3600)] = 120
    # How long a manual observation (RR, BP, ACVPU, O2) counts towards NEWS2.
    obs_valid_s: Annotated[float, msgspec.Meta(ge=60, le=86400)] = 12 * 3600


NotifyEvent = Literal[
    "raised", "escalated", "deescalated", "reactivated", "latched", "acked", "reminder", "cleared", "unacknowledged"
]


class NotifyRoute(msgspec.Struct, forbid_unknown_fields=True):
    """One ``[[notify.routes]]`` table (gateway/notify_policy.py, docs/alarms.md "Notifications").

    Apprise URLs come from ``urls`` (no secrets: a URL with a password is refused),
    ``urls_file`` (one URL per line, ``#`` comments; ``credential:NAME`` under systemd) and
    ``urls_env`` (the name of an environment variable holding URLs separated by whitespace).
    """

    name: str = ""
    wards: list[Annotated[str, msgspec.Meta(pattern=rf"^(\*|{WARD_PATTERN})$")]] = msgspec.field(
        default_factory=lambda: ["*"]
    )
    priorities: list[Literal["high", "medium", "low"]] = msgspec.field(default_factory=lambda: ["high"])
    kinds: list[Literal["physiological", "technical"]] = msgspec.field(
        default_factory=lambda: ["physiological", "technical"]
    )
    events: list[NotifyEvent] = msgspec.field(default_factory=lambda: ["raised", "escalated", "unacknowledged"])
    urls: list[str] = msgspec.field(default_factory=list)
    urls_file: str = ""
    urls_env: str = ""
    rate_per_min: Annotated[int, msgspec.Meta(ge=1, le=600)] = 6
    # An alarm notified and still unacknowledged is notified again this often; 0: never.
    remind_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 300


class NotifyRetry(msgspec.Struct, forbid_unknown_fields=True):
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    base_s: Annotated[float, msgspec.Meta(ge=0.1, le=3600)] = 5
    max_s: Annotated[float, msgspec.Meta(ge=0.1, le=86400)] = 600


class Notify(msgspec.Struct, forbid_unknown_fields=True):
    enabled: bool = True
    routes: list[NotifyRoute] = msgspec.field(default_factory=list)
    retry: NotifyRetry = msgspec.field(default_factory=NotifyRetry)


class Log(msgspec.Struct, forbid_unknown_fields=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "text"] = "json"


class Config(msgspec.Struct, forbid_unknown_fields=True):
    state_dir: str = "/var/lib/wardwatch"
    instance: str = "gw1"
    mqtt: Mqtt = msgspec.field(default_factory=Mqtt)
    influx: Influx = msgspec.field(default_factory=Influx)
    spool: SpoolCfg = msgspec.field(default_factory=SpoolCfg)
    registry: Registry = msgspec.field(default_factory=Registry)
    health: Health = msgspec.field(default_factory=Health)
    alarms: Alarms = msgspec.field(default_factory=Alarms)
    notify: Notify = msgspec.field(default_factory=Notify)
    log: Log = msgspec.field(default_factory=Log)

    def redacted(self) -> dict:
        """The config as a dict with secrets replaced, for logs and `--print-config`."""
        data = msgspec.to_builtins(self)
        for section, key in (("mqtt", "password"), ("influx", "token")):
            if data[section][key]:
                data[section][key] = "***"
        for route in data["notify"]["routes"]:
            route["urls"] = [_url_label(u) for u in route["urls"]]
        return data

    def mqtt_password(self) -> str:
        return _secret(self.mqtt.password, self.mqtt.password_file, "mqtt.password")

    def influx_token(self) -> str:
        return _secret(self.influx.token, self.influx.token_file, "influx.token")

    def notify_urls(self, index: int, env: dict[str, str] | None = None) -> list[str]:
        """Route ``index``'s apprise URLs: ``urls``, then ``urls_file``'s lines, then
        ``urls_env``'s words. Secret: never log what this returns."""
        route = self.notify.routes[index]
        urls = list(route.urls)
        where = f"notify.routes[{index}]"
        if route.urls_file:
            try:
                text = Path(route.urls_file).read_text()
            except OSError as exc:
                raise ConfigError(f"{where}.urls_file: cannot read {route.urls_file}: {exc.strerror}") from None
            urls += [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith("#")]
        if route.urls_env:
            value = (os.environ if env is None else env).get(route.urls_env, "")
            if not value.strip():
                raise ConfigError(f"{where}.urls_env: environment variable {route.urls_env} is not set or empty")
            urls += value.split()
        return urls


class ConfigError(Exception):
    """A config problem, with the key (and file line) in the message."""


ENV_PREFIX = "WARDWATCH_"
CREDENTIAL_SCHEME = "credential:"
_SECRET_FILES = (("mqtt", "password_file"), ("influx", "token_file"))
_SECTIONS = ("mqtt", "influx", "spool", "registry", "health", "alarms", "notify", "log")


def _url_label(url: str) -> str:
    """An apprise URL's scheme only, for printing the config."""
    return url.split("://", 1)[0] + "://***" if "://" in url else "***"


def _route_line(text: str, index: int, key: str) -> int | None:
    """The line of ``key`` in the ``index``-th ``[[notify.routes]]`` table of TOML ``text``,
    else that table's header line, else None."""
    lines = text.splitlines()
    headers = [n for n, line in enumerate(lines) if re.match(r"^\[\[\s*notify\.routes\s*\]\]", line.strip())]
    if index >= len(headers):
        return None
    start = headers[index]
    for n in range(start + 1, len(lines)):
        stripped = lines[n].strip()
        if stripped.startswith("["):
            break
        if key and re.match(rf"^{re.escape(key)}\s*=", stripped):
            return n + 1
    return start + 1


def _locate(source: str, text: str, err: msgspec.ValidationError) -> str:
    """``located`` for config errors; one in a ``[[notify.routes]]`` table names its index
    and finds the line in that table (tomlkeys does not count array tables)."""
    m = re.search(r"\$\.notify\.routes\[(\d+)\]", str(err))
    if not m:
        return located(source, text, error_key(err), error_message(err))
    index = int(m.group(1))
    rest = error_key(err).removeprefix("notify.routes").lstrip(".")
    line = _route_line(text, index, rest.split(".")[0])
    where = f"{source}:{line}" if line else source
    return f"{where}: notify.routes[{index}]{'.' + rest if rest else ''}: {error_message(err)}"


def _check_notify(cfg: "Config", source: str, text: str) -> None:
    """Route names unique (default ``route<N>``), every route with a URL source, and no
    password in a URL written in the config file."""
    names: set[str] = set()
    for index, route in enumerate(cfg.notify.routes):
        def fail(key: str, problem: str) -> ConfigError:
            line = _route_line(text, index, key) if text else None
            where = f"{source}:{line}" if line else source
            return ConfigError(f"{where}: notify.routes[{index}].{key}: {problem}")

        route.name = route.name or f"route{index + 1}"
        if route.name in names:
            raise fail("name", f"route name {route.name!r} used twice")
        names.add(route.name)
        if not (route.urls or route.urls_file or route.urls_env):
            raise fail("urls", "a route needs urls, urls_file or urls_env")
        for url in route.urls:
            try:
                password = urllib.parse.urlsplit(url).password
            except ValueError:
                password = None
            if password:
                raise fail("urls", "a URL with a password belongs in urls_file or urls_env, not in the config file")


def read_toml(path: str | Path, what: str, error: type[Exception] = ConfigError) -> tuple[str, dict]:
    """(text, data) of a TOML file; ``error`` names the file and what it is for."""
    try:
        text = Path(path).read_text()
        return text, tomllib.loads(text)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: {exc}") from None


def _secret(value: str, file: str, key: str) -> str:
    if value:
        return value
    if file:
        try:
            return Path(file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{key}_file: cannot read {file}: {exc.strerror}") from None
    return ""


def _env_overrides(env: dict[str, str]) -> dict:
    """``WARDWATCH_SECTION_KEY=value`` (or ``WARDWATCH_KEY`` for top-level keys) as a dict."""
    out: dict = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section in _SECTIONS and key:
            out.setdefault(section, {})[key] = value.split(",") if key == "wards" else value
        elif rest in ("state_dir", "instance"):
            out[rest] = value
    return out


def _merge(base: dict, over: dict) -> dict:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load(path: str | Path | None, env: dict[str, str] | None = None) -> Config:
    """Load the TOML file (None: defaults only) with ``env`` overrides (default os.environ)."""
    env = dict(os.environ if env is None else env)
    text, data, source = "", {}, "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    try:
        msgspec.convert(data, Config)
    except msgspec.ValidationError as err:
        raise ConfigError(_locate(source, text, err)) from None
    overrides = _env_overrides(env)
    try:
        # Environment values are strings; str_values lets "8883" become an int where one is due.
        cfg = msgspec.convert(_merge(data, overrides), Config, strict=False)
    except msgspec.ValidationError as err:
        env_name = ENV_PREFIX + error_key(err).replace(".", "_").upper()
        raise ConfigError(f"environment {env_name}: {error_message(err)}") from None
    _check_notify(cfg, source, text)
    _resolve_credentials(cfg, env)
    return cfg


def _resolve_credentials(cfg: Config, env: dict[str, str]) -> None:
    """Replace ``credential:NAME`` secret-file values by ``$CREDENTIALS_DIRECTORY/NAME``."""
    secret_files = [(getattr(cfg, section), key, f"{section}.{key}") for section, key in _SECRET_FILES]
    secret_files += [(r, "urls_file", f"notify.routes[{i}].urls_file") for i, r in enumerate(cfg.notify.routes)]
    for part, key, where in secret_files:
        value = getattr(part, key)
        if not value.startswith(CREDENTIAL_SCHEME):
            continue
        name = value[len(CREDENTIAL_SCHEME) :]
        if not name or "/" in name or name in (".", ".."):
            raise ConfigError(f"{where}: {value!r}: a credential name is one file name")
        directory = env.get("CREDENTIALS_DIRECTORY", "")
        if not directory:
            raise ConfigError(
                f"{where}: {value!r} needs $CREDENTIALS_DIRECTORY (set by systemd for "
                "a unit with LoadCredential=), which is not set"
            )
        setattr(part, key, str(Path(directory) / name))


def load_limits(path: str | Path) -> Limits:
    """Read the alarm limits file (``[alarms] limits_file``) into checked ``Limits``.

    Raises ``LimitsError`` naming the file, the line and the key.
    """
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise LimitsError(f"{path}: cannot read limits: {exc.strerror}") from None
    return Limits.parse(text, str(path))
