"""Scale-out by ward with systemd: the template unit wardwatch-gateway@.service (one instance
per ward group), the ward-group checks, and `wardwatch provision gateway --instance GROUP` under
a temporary root. Two instances running on disjoint wards: tests/integration/test_scale_out.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from provisioning import gateway_service as gs

from test_gateway_unit import verify  # same folder (no package: rootdir import mode)

REPO = Path(__file__).resolve().parents[2]
WARDWATCH = str(Path(sys.executable).parent / "wardwatch")


def test_the_committed_template_is_the_generators_output():
    committed = (REPO / "provisioning" / "systemd" / gs.TEMPLATE_NAME).read_text()
    assert committed == gs.render_unit(gs.UnitSettings(template=True))


def test_each_instance_has_its_own_config_state_session_and_name():
    lines = set(gs.render_unit(gs.UnitSettings(wardwatch="/srv/ww/bin/wardwatch", template=True)).splitlines())
    for line in [
        "ExecStart=/srv/ww/bin/wardwatch gateway --config /etc/wardwatch/gateway-%i.toml",
        "StateDirectory=wardwatch/%i", "Environment=WARDWATCH_STATE_DIR=/var/lib/wardwatch/%i",
        "Environment=WARDWATCH_INSTANCE=%i", "Environment=WARDWATCH_MQTT_CLIENT_ID=wardwatch-gateway-%i",
        "Type=notify", "WatchdogSec=30", "Restart=on-failure", "DynamicUser=yes",
    ]:
        assert line in lines, line


def test_systemd_analyze_verify_passes_on_the_template(tmp_path):
    unit = tmp_path / gs.TEMPLATE_NAME
    unit.write_text(gs.render_unit(gs.UnitSettings(wardwatch=WARDWATCH, template=True)))
    verify(unit)
    unit.write_text(unit.read_text().replace("StateDirectoryMode=", "StateDirectoryMod="))
    with pytest.raises(AssertionError, match="Unknown key 'StateDirectoryMod'"):
        verify(unit)


@pytest.mark.parametrize(("groups", "problems"), [
    ({"north": (["w1", "w2"], "127.0.0.1:8781"), "south": (["w3"], "127.0.0.1:8782")}, []),
    ({"north": (["w1", "w2"], "127.0.0.1:8781"), "south": (["w2"], "127.0.0.1:8782")},
     ["south: ward w2 is already served by north"]),
    ({"all": (["+"], "127.0.0.1:8781")}, ['all: mqtt.wards is "+" (every ward): a ward group names its wards']),
    ({"a": (["w1"], "127.0.0.1:8780"), "b": (["w2"], "127.0.0.1:8780")},
     ["b: health.listen 127.0.0.1:8780 is already used by a"]),
])
def test_group_conflicts(groups, problems):
    assert gs.group_conflicts(groups) == problems


def group_config(tmp_path: Path, name: str, wards: str, port: int) -> Path:
    path = tmp_path / "in" / f"{name}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'[mqtt]\nhost = "broker.example"\nwards = {wards}\n[health]\nlisten = "127.0.0.1:{port}"\n')
    return path


def provision(root: Path, *args) -> int:
    parser = argparse.ArgumentParser()
    gs.add_arguments(parser)
    return gs.run(parser.parse_args(["--root", str(root), "--wardwatch", WARDWATCH, *map(str, args)]))


def test_provision_instances_installs_the_template_once_and_a_config_per_group(tmp_path, capsys):
    root = tmp_path / "root"
    assert provision(root, "--config", group_config(tmp_path, "n", '["w1", "w2"]', 8781), "--instance", "north") == 0
    out = capsys.readouterr().out
    assert "systemctl enable --now wardwatch-gateway@north" in out
    assert provision(root, "--config", group_config(tmp_path, "s", '["w3"]', 8782), "--instance", "south") == 0
    out = capsys.readouterr().out
    assert "unchanged /etc/systemd/system/wardwatch-gateway@.service" in out
    assert (root / "etc/wardwatch/gateway-north.toml").is_file() and (root / "etc/wardwatch/gateway-south.toml").is_file()
    template = root / "etc/systemd/system" / gs.TEMPLATE_NAME
    assert template.read_text() == gs.render_unit(gs.UnitSettings(wardwatch=WARDWATCH, credentials=(), template=True))
    verify(template)
    # Reinstalling a group with the same wards is fine (it is not compared with itself).
    assert provision(root, "--config", group_config(tmp_path, "n", '["w1", "w2"]', 8781), "--instance", "north") == 0


@pytest.mark.parametrize(("wards", "port", "instance", "message"), [
    ('["w2"]', 8782, "south", "south: ward w2 is already served by north"),
    ('["+"]', 8782, "south", 'mqtt.wards is "+"'),
    ('["w3"]', 8781, "south", "health.listen 127.0.0.1:8781 is already used by north"),
    ('["w3"]', 8782, "South!", "--instance 'South!'"),
])
def test_a_clashing_group_installs_nothing(tmp_path, capsys, wards, port, instance, message):
    root = tmp_path / "root"
    assert provision(root, "--config", group_config(tmp_path, "n", '["w1", "w2"]', 8781), "--instance", "north") == 0
    capsys.readouterr()
    assert provision(root, "--config", group_config(tmp_path, "s", wards, port), "--instance", instance) == 2
    assert message in capsys.readouterr().err
    assert not list((root / "etc/wardwatch").glob("gateway-[!n]*.toml"))
