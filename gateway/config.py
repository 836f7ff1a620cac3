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
loaded, and without that variable loading fails naming the key.
"""

from __future__ import annotations

import os
import tomllib
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
    log: Log = msgspec.field(default_factory=Log)

    def redacted(self) -> dict:
        """The config as a dict with secrets replaced, for logs and `--print-config`."""
        data = msgspec.to_builtins(self)
        for section, key in (("mqtt", "password"), ("influx", "token")):
            if data[section][key]:
                data[section][key] = "***"
        return data

    def mqtt_password(self) -> str:
        return _secret(self.mqtt.password, self.mqtt.password_file, "mqtt.password")

    def influx_token(self) -> str:
        return _secret(self.influx.token, self.influx.token_file, "influx.token")


class ConfigError(Exception):
    """A config problem, with the key (and file line) in the message."""


ENV_PREFIX = "WARDWATCH_"
CREDENTIAL_SCHEME = "credential:"
_SECRET_FILES = (("mqtt", "password_file"), ("influx", "token_file"))
_SECTIONS = ("mqtt", "influx", "spool", "registry", "health", "alarms", "log")


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
        raise ConfigError(located(source, text, error_key(err), error_message(err))) from None
    overrides = _env_overrides(env)
    try:
        # Environment values are strings; str_values lets "8883" become an int where one is due.
        cfg = msgspec.convert(_merge(data, overrides), Config, strict=False)
    except msgspec.ValidationError as err:
        env_name = ENV_PREFIX + error_key(err).replace(".", "_").upper()
        raise ConfigError(f"environment {env_name}: {error_message(err)}") from None
    _resolve_credentials(cfg, env)
    return cfg


def _resolve_credentials(cfg: Config, env: dict[str, str]) -> None:
    """Replace ``credential:NAME`` secret-file values by ``$CREDENTIALS_DIRECTORY/NAME``."""
    for section, key in _SECRET_FILES:
        part = getattr(cfg, section)
        value = getattr(part, key)
        if not value.startswith(CREDENTIAL_SCHEME):
            continue
        name = value[len(CREDENTIAL_SCHEME) :]
        if not name or "/" in name or name in (".", ".."):
            raise ConfigError(f"{section}.{key}: {value!r}: a credential name is one file name")
        directory = env.get("CREDENTIALS_DIRECTORY", "")
        if not directory:
            raise ConfigError(
                f"{section}.{key}: {value!r} needs $CREDENTIALS_DIRECTORY (set by systemd for "
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
