"""The device inventory: which boards a site has, where each one goes, and the site's
settings every board's config shares. Read by ``wardwatch provision device``.

A TOML file (``provisioning/inventory.example.toml``)::

    [site]
    broker_host = "broker.ward.local"     # what the boards connect to
    broker_port = 8883
    tls = true
    cafile = "/etc/wardwatch/ca.crt"      # host path; copied to each board as /ca.crt
    wifi_ssid = "ward-net"
    wifi_key_file = "/root/ward-secrets/wifi.key"   # the key never sits in this file
    rate_hz = 1

    [devices.bed-01-a]
    ward = "w1"
    bed = "01"
    board = "esp32"                       # esp32 | rp2
    serial_number = "0001A2B3"            # optional: the USB serial number, or
    port = "/dev/ttyUSB0"                 # optional: a fixed serial port
    sim = false                           # stated for every board: true only on a bench

``sim`` has no default: a board that simulates vitals on a ward would show invented numbers,
so the inventory must say it for each device (or once in ``[site]``). Errors name the file,
the line and the key, like the gateway's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from gateway.config import ConfigError, read_toml
from gateway.contract import BED_RE, DEVICE_PATTERN, ID_RE, WARD_RE
from gateway.tomlkeys import error_key, error_message, located

BOARDS = ("esp32", "rp2")
THERMOMETERS = ("max30205", "ds18b20", "none")


class Site(msgspec.Struct, forbid_unknown_fields=True):
    broker_host: str
    broker_port: Annotated[int, msgspec.Meta(ge=1, le=65535)] | None = None  # default: 8883 with TLS, else 1883
    tls: bool = True
    cafile: str = ""
    wifi_ssid: str = ""
    wifi_key_file: str = ""
    prefix: str = "wardwatch/v1"
    rate_hz: Annotated[float, msgspec.Meta(gt=0, le=50)] = 1
    keepalive_s: Annotated[int, msgspec.Meta(ge=5, le=600)] = 30
    sim: bool | None = None  # the default for devices that do not say


class Device(msgspec.Struct, forbid_unknown_fields=True):
    ward: str
    bed: str
    board: str
    serial_number: str = ""
    port: str = ""
    sim: bool | None = None
    thermometer: str = "max30205"
    swap_red_ir: bool = False
    scenario: str = ""  # with sim = true: the simulated patient's scenario (default stable)


class Entry(msgspec.Struct, frozen=True):
    """One device of the inventory with its site settings resolved."""
    id: str
    ward: str
    bed: str
    board: str
    serial_number: str
    port: str
    sim: bool
    thermometer: str
    swap_red_ir: bool
    scenario: str


class Inventory(msgspec.Struct, frozen=True):
    path: str
    site: Site
    devices: dict[str, Entry]


class _File(msgspec.Struct, forbid_unknown_fields=True):
    site: dict
    devices: dict[str, dict] = {}


def load(path: str | Path) -> Inventory:
    """Read and check an inventory file; raises ConfigError naming ``file:line: key``."""
    text, data = read_toml(path, "inventory")
    source = str(path)

    def fail(key: str, problem: str):
        raise ConfigError(located(source, text, key, problem)) from None

    try:
        raw = msgspec.convert(data, _File)
    except msgspec.ValidationError as err:
        fail(error_key(err), error_message(err))
    try:
        site = msgspec.convert(raw.site, Site)
    except msgspec.ValidationError as err:
        fail(error_key(err, "site"), error_message(err))
    if site.tls and not site.cafile:
        fail("site.cafile", "needed with tls = true: a board has no CA store, so it verifies the broker "
                            "against this CA certificate (copied to each board as /ca.crt)")
    if site.wifi_ssid and not site.wifi_key_file:
        fail("site.wifi_key_file", "needed with wifi_ssid (the key is read from this file, never from the inventory)")
    entries: dict[str, Entry] = {}
    seen: dict[tuple[str, str], str] = {}
    for dev, table in raw.devices.items():
        key = f"devices.{dev}"
        try:
            d = msgspec.convert(table, Device)
        except msgspec.ValidationError as err:
            fail(error_key(err, key), error_message(err))
        if not ID_RE.match(dev):
            fail(key, f"not a device id {DEVICE_PATTERN}")
        if not WARD_RE.match(d.ward):
            fail(f"{key}.ward", f"{d.ward!r} is not a ward id")
        if not BED_RE.match(d.bed):
            fail(f"{key}.bed", f"{d.bed!r} is not a bed id {BED_RE.pattern}")
        if d.board not in BOARDS:
            fail(f"{key}.board", f"{d.board!r}: need one of {', '.join(BOARDS)}")
        if d.thermometer not in THERMOMETERS:
            fail(f"{key}.thermometer", f"{d.thermometer!r}: need one of {', '.join(THERMOMETERS)}")
        sim = d.sim if d.sim is not None else site.sim
        if sim is None:
            fail(f"{key}.sim", "say sim = true (simulated vitals, bench only) or sim = false (real sensors), "
                               "here or in [site]")
        if (d.ward, d.bed) in seen:
            fail(f"{key}.bed", f"ward {d.ward} bed {d.bed} is also {seen[d.ward, d.bed]}'s")
        seen[d.ward, d.bed] = dev
        entries[dev] = Entry(dev, d.ward, d.bed, d.board, d.serial_number, d.port, sim, d.thermometer,
                             d.swap_red_ir, d.scenario)
    for attr in ("serial_number", "port"):
        owners: dict[str, str] = {}
        for e in entries.values():
            value = getattr(e, attr)
            if value and value in owners:
                fail(f"devices.{e.id}.{attr}", f"{value!r} is also {owners[value]}'s")
            owners[value] = e.id
    return Inventory(source, site, entries)

