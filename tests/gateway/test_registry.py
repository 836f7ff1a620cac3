import pytest

from gateway.config import ConfigError
from gateway.registry import UNASSIGNED, Registry


def test_load_and_lookup(tmp_path):
    p = tmp_path / "devices.toml"
    p.write_text('[devices.bed-01]\nward = "w1"\nbed = "01"\n')
    r = Registry.load(p)
    assert r.bed_of("w1", "bed-01") == "01"
    assert r.bed_of("w2", "bed-01") == UNASSIGNED
    assert r.bed_of("w1", "bed-99") == UNASSIGNED


@pytest.mark.parametrize(
    "text,match",
    [
        ('[devices.BAD]\nward = "w1"\nbed = "1"\n', r":1: devices.BAD"),
        ('[devices.cmd]\nward = "w1"\nbed = "1"\n', r":1: devices.cmd: 'cmd' is reserved"),
        ('[devices.bed-01]\nward = "w1"\nbed = "a/b"\n', r":1: devices.bed-01.bed: 'a/b' is not a bed id"),
        ('[devices.bed-01]\nward = "w1"\nbed = "#"\n', r"devices.bed-01.bed"),
        ('\n[devices.bed-01]\nward = "W 1"\nbed = "1"\n', r":2: devices.bed-01.ward"),
        ('[devices.bed-01]\nward = "w1"\n', r"bed"),
        ('[devices.bed-01]\nward = "w1"\nbed = "1"\ncolour = "red"\n', r"colour"),
    ],
)
def test_errors_name_the_key(tmp_path, text, match):
    p = tmp_path / "devices.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Registry.load(p)
