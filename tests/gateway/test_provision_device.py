"""The pure and host-side parts of `wardwatch provision device`, from tables: the inventory,
finding boards by USB id, the .mpy version a board needs and the compiler that makes it, the
board's config, the copy plan, and the credentials written on the host (real mosquitto_passwd).
The boards themselves: tests/integration/test_provision_device.py (virtual boards, real mpremote)."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from serial.tools.list_ports_common import ListPortInfo

from gateway.config import ConfigError
from provisioning import device, firmware_image, inventory, serialports
from provisioning.board_link import BoardInfo

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"

SITE = """
[site]
broker_host = "broker.ward.example"
tls = true
cafile = "/etc/wardwatch/ca.crt"
wifi_ssid = "ward-net"
wifi_key_file = "/k"
"""


def load(tmp_path, text: str) -> inventory.Inventory:
    path = tmp_path / "inv.toml"
    path.write_text(text)
    return inventory.load(path)


# ---- .mpy versions and compilers --------------------------------------------------------------

@pytest.mark.parametrize("value, version, sub, arch", [
    (774, 6, 3, None),            # the WebAssembly port (no native emitter)
    (6 | (3 | 10 << 2) << 8, 6, 3, "xtensawin"),  # ESP32
    (6 | (3 | 4 << 2) << 8, 6, 3, "armv6m"),      # RP2040
    (6 | (2 | 10 << 2) << 8, 6, 2, "xtensawin"),  # ESP32 on MicroPython 1.22
    (6, 6, 0, None),              # 1.19
    (5, 5, 0, None),
])
def test_the_board_mpy_number_decodes(value, version, sub, arch):
    t = firmware_image.decode_mpy(value)
    assert (t.version, t.sub, t.arch) == (version, sub, arch)


@pytest.mark.parametrize("value", [-1, 1 << 16, 6 | 63 << 10, "774"])
def test_a_nonsense_mpy_number_is_refused(value):
    with pytest.raises(firmware_image.ImageError):
        firmware_image.decode_mpy(value)


def test_the_compiler_emits_the_board_version_or_is_refused_naming_both():
    newest = firmware_image.compiler_for(firmware_image.MpyTarget(6, 3, "xtensawin"))
    assert "-b" not in newest
    older = firmware_image.compiler_for(firmware_image.MpyTarget(6, 2, "xtensawin"))
    assert older[-2:] == ["-b", "6.2"] and firmware_image._emits(older) == (6, 2)
    with pytest.raises(firmware_image.ImageError) as err:
        firmware_image.compiler_for(firmware_image.MpyTarget(6, 4, "armv6m"), "MicroPython v1.30.0")
    assert "MicroPython v1.30.0 with .mpy v6.4" in str(err.value) and "emits v6.3" in str(err.value)


def test_the_image_is_compiled_for_the_board_and_is_reproducible(tmp_path):
    target = firmware_image.MpyTarget(6, 3, "xtensawin")
    compiler = firmware_image.compiler_for(target)
    a = firmware_image.build(FIRMWARE, target, tmp_path / "a", compiler)
    b = firmware_image.build(FIRMWARE, target, tmp_path / "b", compiler)
    assert a == b
    assert a["/main.py"] == (FIRMWARE / "main.py").read_bytes()
    assert {"/lib/bedside/app.mpy", "/lib/bedside/__init__.mpy", "/lib/bedside/drivers/max30102.mpy"} <= set(a)
    assert not any(p.endswith(".py") for p in a if p != "/main.py")
    for path, data in a.items():
        if path.endswith(".mpy"):
            # header: 'M', version, then sub-version | arch << 2, which mpy-cross writes only
            # for native code (none here): bytecode loads wherever the major version matches.
            assert data[:3] == bytes([ord("M"), 6, 0]), path
    native = tmp_path / "native.py"
    native.write_text("import micropython\n@micropython.native\ndef f(x):\n    return x + 1\n")
    out = tmp_path / "native.mpy"
    import subprocess

    subprocess.run(compiler + ["-march=xtensawin", "-o", str(out), str(native)], check=True)
    assert out.read_bytes()[:3] == bytes([ord("M"), 6, 3 | 10 << 2])  # what -march does with native code


# ---- inventory ---------------------------------------------------------------------------------

def test_the_example_inventory_loads():
    inv = inventory.load(REPO / "provisioning" / "inventory.example.toml")
    assert set(inv.devices) == {"bed-01-a", "bed-02-a", "bench-01"}
    assert inv.devices["bed-01-a"].sim is False and inv.devices["bench-01"].sim is True


@pytest.mark.parametrize("devices, where", [
    ('[devices.bed-01]\nward = "w1"\nbed = "01"\nboard = "esp32"\n', ":8: devices.bed-01.sim: say sim = true"),
    ('[devices.bed-01]\nward = "w1"\nbed = "01"\nboard = "esp8266"\nsim = false\n', "devices.bed-01.board: 'esp8266'"),
    ('[devices.bed-01]\nward = "w1"\nbed = "01"\nboard = "esp32"\nsim = false\ncolour = "red"\n',
     "devices.bed-01.colour"),
    ('[devices.bed-01]\nward = "w1"\nbed = "01"\nboard = "esp32"\nsim = false\n'
     '[devices.bed-02]\nward = "w1"\nbed = "01"\nboard = "esp32"\nsim = false\n', "bed 01 is also bed-01's"),
    ('[devices.bed-01]\nward = "w1"\nbed = "01"\nboard = "esp32"\nsim = false\nserial_number = "A"\n'
     '[devices.bed-02]\nward = "w1"\nbed = "02"\nboard = "esp32"\nsim = false\nserial_number = "A"\n',
     "devices.bed-02.serial_number: 'A' is also bed-01's"),
    ('[devices.B]\nward = "w1"\nbed = "01"\nboard = "esp32"\nsim = false\n', "devices.B: not a device id"),
])
def test_a_bad_inventory_names_the_key_and_line(tmp_path, devices, where):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, SITE + devices)
    assert where in str(err.value)


def test_tls_needs_the_ca_a_board_verifies_the_broker_with(tmp_path):
    with pytest.raises(ConfigError, match="site.cafile: needed with tls = true: a board has no CA store"):
        load(tmp_path, '[site]\nbroker_host = "b"\ntls = true\n')
    assert load(tmp_path, '[site]\nbroker_host = "b"\ntls = false\n').site.tls is False


def test_a_wifi_ssid_needs_a_key_file_not_a_key(tmp_path):
    with pytest.raises(ConfigError, match="site.wifi_key"):
        load(tmp_path, '[site]\nbroker_host = "b"\nwifi_ssid = "n"\nwifi_key = "secret"\n')


# ---- finding boards ----------------------------------------------------------------------------

def port(device: str, vid, pid, serial=None) -> ListPortInfo:
    p = ListPortInfo(device, skip_link_detection=True)
    p.vid, p.pid, p.serial_number = vid, pid, serial
    return p


def test_boards_are_found_by_usb_vendor_and_product():
    ports = [port("/dev/ttyS0", None, None), port("/dev/ttyACM1", 0x2E8A, 0x0005, "E661"),
             port("/dev/ttyUSB0", 0x10C4, 0xEA60, "0001"), port("/dev/ttyUSB1", 0x1A86, 0x7523),
             port("/dev/ttyACM0", 0x303A, 0x1001, "AA:BB"), port("/dev/ttyUSB2", 0x0403, 0x6015, "FT1"),
             port("/dev/ttyUSB3", 0x046D, 0xC52B, "mouse")]
    found = serialports.boards_in(ports)
    assert [(b.port, b.kind) for b in found] == [
        ("/dev/ttyACM0", "Espressif USB"), ("/dev/ttyACM1", "Raspberry Pi RP2040 (MicroPython)"),
        ("/dev/ttyUSB0", "Silicon Labs CP210x"), ("/dev/ttyUSB1", "WCH CH340"), ("/dev/ttyUSB2", "FTDI FT-X")]


def test_inventory_entries_pair_by_serial_number_then_fixed_port(tmp_path):
    inv = load(tmp_path, SITE + "sim = false\n" + "".join(
        f'[devices.{d}]\nward = "w1"\nbed = "{n:02d}"\nboard = "esp32"\n{extra}\n'
        for n, (d, extra) in enumerate([("bed-01", 'serial_number = "0001"'), ("bed-02", 'port = "/dev/pts/7"'),
                                        ("bed-03", 'serial_number = "0003"'), ("bed-04", "")], 1)))
    found = serialports.boards_in([port("/dev/ttyUSB5", 0x10C4, 0xEA60, "0001"),
                                   port("/dev/ttyUSB6", 0x10C4, 0xEA60, "0099")])
    p = serialports.pair(inv.devices.values(), found)
    assert p.assigned == {"bed-01": "/dev/ttyUSB5", "bed-02": "/dev/pts/7"}
    assert p.missing == ["bed-03"]
    assert [b.serial_number for b in p.unknown] == ["0099"]


# ---- what goes on the board ----------------------------------------------------------------------

def entry(**over) -> inventory.Entry:
    base = dict(id="bed-01-a", ward="w1", bed="01", board="esp32", serial_number="", port="", sim=False,
                thermometer="max30205", swap_red_ir=False, scenario="")
    base.update(over)
    return inventory.Entry(**base)


def test_the_board_config_states_sim_and_is_byte_stable(tmp_path):
    inv = load(tmp_path, SITE)
    real = device.board_config(entry(), inv.site, "pw", "wifi-key")
    assert real == device.board_config(entry(), inv.site, "pw", "wifi-key")
    cfg = json.loads(real)
    assert cfg["sim"] is False and cfg["thermometer"] == "max30205" and "scenario" not in cfg
    assert cfg["broker"] == {"host": "broker.ward.example", "user": "bed-01-a", "password": "pw", "tls": True,
                             "cafile": "/ca.crt", "keepalive": 30}
    assert cfg["wifi"] == {"ssid": "ward-net", "key": "wifi-key"}
    sim = json.loads(device.board_config(entry(sim=True, scenario="desat"), inv.site, "pw", None))
    assert sim["sim"] is True and sim["scenario"] == "desat" and "thermometer" not in sim


@pytest.mark.parametrize("board, platform, problem", [
    ("esp32", "esp32", None), ("rp2", "rp2", None), ("esp32", "rp2", "the inventory says esp32"),
    ("rp2", "esp32", "the inventory says rp2"), ("esp32", "webassembly", None),
])
def test_a_board_of_the_wrong_kind_is_refused(board, platform, problem):
    got = device.platform_problem(board, BoardInfo(platform, "", 774, ""))
    assert (got is None) if problem is None else problem in got


def test_the_copy_plan_skips_identical_files_and_removes_stale_firmware():
    image = {"/main.py": b"a", "/lib/bedside/app.mpy": b"b", "/config.json": b"c"}
    on_board = {"/main.py": hashlib.sha256(b"a").hexdigest(), "/lib/bedside/app.mpy": "0" * 64, "/config.json": None}
    copy, same, stale = device.copy_plan(image, on_board, ["/lib/bedside/app.mpy", "/lib/bedside/app.py"])
    assert copy == ["/lib/bedside/app.mpy", "/config.json"] and same == ["/main.py"]
    assert stale == ["/lib/bedside/app.py"]


# ---- host files ----------------------------------------------------------------------------------

def test_device_passwords_are_random_private_kept_and_rotated(tmp_path):
    path = tmp_path / "secrets" / "devices.creds"
    creds = device.Credentials(path)
    pw, new = creds.password_for("bed-01-a")
    assert new and len(pw) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert device.Credentials(path).password_for("bed-01-a") == (pw, False)
    other, _ = creds.password_for("bed-02-a")
    assert other != pw
    rotated, new = device.Credentials(path).password_for("bed-01-a", rotate=True)
    assert new and rotated != pw
    assert device.Credentials(path).users == {"bed-01-a": rotated, "bed-02-a": other}


def test_the_broker_password_file_gets_a_hashed_line_once(tmp_path):
    passwd = tmp_path / "wardwatch.passwd"
    passwd.write_text("wardwatch-gateway:$7$101$abc$def\n")
    assert device.add_to_passwd(passwd, "bed-01-a", "s3cret-pw", replace=False)
    lines = passwd.read_text().splitlines()
    assert lines[0] == "wardwatch-gateway:$7$101$abc$def"
    assert lines[1].startswith("bed-01-a:$7$") and "s3cret-pw" not in passwd.read_text()
    assert stat.S_IMODE(passwd.stat().st_mode) == 0o600
    assert not device.add_to_passwd(passwd, "bed-01-a", "s3cret-pw", replace=False)
    assert device.add_to_passwd(passwd, "bed-01-a", "new-pw", replace=True)
    assert len(passwd.read_text().splitlines()) == 2 and passwd.read_text().splitlines()[1] != lines[1]


def test_the_registry_gets_the_bed_once_and_a_conflict_is_refused(tmp_path):
    from gateway.registry import Registry

    reg = tmp_path / "devices.toml"
    reg.write_text('[devices.old-01]\nward = "w1"\nbed = "09"\n')
    assert device.add_to_registry(reg, entry())
    assert not device.add_to_registry(reg, entry())
    placements = Registry.load(reg).placements()
    assert placements["bed-01-a"].bed == "01" and placements["old-01"].bed == "09"
    with pytest.raises(ConfigError, match="puts bed-01-a in ward w1 bed 01; the inventory says ward w1 bed 02"):
        device.add_to_registry(reg, entry(bed="02"))
