"""One locator for "which line set this key" and one reading of msgspec's errors, for every file."""

from __future__ import annotations

import msgspec
import pytest

from gateway.tomlkeys import error_key, error_message, line_of, located

TEXT = '''state_dir = "/x"

[mqtt]
host = "h"
port = 1883

[ward.w1.bed."03".hr_high]
limit = 130

[devices.sim-w1-01]
ward = "w1"
'''


@pytest.mark.parametrize(
    "key,line",
    [
        ("state_dir", 1),
        ("mqtt", 3),
        ("mqtt.port", 5),
        ("mqtt.tls", 3),                         # not set: the enclosing table
        (("ward", "w1", "bed", "03", "hr_high", "limit"), 8),
        ("ward.w1.bed.03.hr_high", 7),
        ("devices.sim-w1-01.ward", 11),
        ("nowhere.at.all", None),
    ],
)
def test_line_of(key, line):
    assert line_of(TEXT, key) == line


class Inner(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    port: int = 1


class Outer(msgspec.Struct, forbid_unknown_fields=True):
    mqtt: Inner = Inner()
    items: list[Inner] = []


@pytest.mark.parametrize(
    "data,key,message",
    [
        ({"mqtt": {"port": "x"}}, "mqtt.port", "Expected `int`, got `str`"),
        ({"mqtt": {"prot": 1}}, "mqtt.prot", "Object contains unknown field `prot`"),
        ({"items": [{"port": "x"}]}, "items.port", "Expected `int`, got `str`"),
        ({"nope": 1}, "nope", "Object contains unknown field `nope`"),
    ],
)
def test_error_key_and_message(data, key, message):
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert(data, Outer)
    assert error_key(info.value) == key
    assert error_key(info.value, "base") == f"base.{key}"
    assert error_message(info.value) == message


def test_located():
    assert located("gw.toml", TEXT, "mqtt.port", "bad") == "gw.toml:5: mqtt.port: bad"
    assert located("gw.toml", TEXT, "zzz", "bad") == "gw.toml: zzz: bad"
    assert located("gw.toml", TEXT, "", "bad") == "gw.toml: (top level): bad"
