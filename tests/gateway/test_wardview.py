from rich.console import Console

from gateway.cli.wardview import active_alarms, render


def text_of(renderable) -> str:
    console = Console(width=140, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_render_shows_values_nulls_staleness_and_rejects():
    now = 1_000_000
    beds = [
        {"time": now - 2000, "bed": "01", "device": "sim-w1-01", "hr": 72, "spo2": 97, "temp": 36.8, "pi": 2.5,
         "sqi": 0.9, "probe": "ok", "sim": True},
        {"time": now - 45000, "bed": "02", "device": "sim-w1-02", "hr": None, "spo2": None, "temp": None,
         "pi": None, "sqi": 0.1, "probe": "off", "sim": False},
    ]
    out = text_of(render("w1", beds, {"not_json": 3, "oversize": 1}, now))
    assert "not a medical device" in out
    row1 = next(line for line in out.splitlines() if "sim-w1-01" in line)
    assert "72" in row1 and "97" in row1 and "36.8" in row1 and "2s ago" in row1 and "SIM" in row1
    row2 = next(line for line in out.splitlines() if "sim-w1-02" in line)
    assert row2.count("--") == 5 and "off" in row2 and "45s ago" in row2 and "SIM" not in row2
    assert "gateway rejects (24 h): 4 (not_json 3, oversize 1)" in out


def test_out_of_limit_values_are_highlighted():
    beds = [{"time": 0, "bed": "03", "device": "d-03", "hr": 125, "spo2": 86, "temp": 39.2, "pi": 1.0,
             "sqi": 0.9, "probe": "ok", "sim": True},
            {"time": 0, "bed": "04", "device": "d-04", "hr": 80, "spo2": 95, "temp": 37.0, "pi": 1.0,
             "sqi": 0.9, "probe": "ok", "sim": True}]
    table = render("w1", beds, {}, 0).renderables[0]
    cells = {c.header: c._cells for c in table.columns}
    assert [cells["SpO2"][i].style for i in (0, 1)] == ["bold red", ""]
    assert [cells["HR"][i].style for i in (0, 1)] == ["bold yellow", ""]
    assert [cells["Temp"][i].style for i in (0, 1)] == ["yellow", ""]


def test_active_alarms_fold_events_and_render_with_priority_news2_and_simulated():
    rows = [
        {"time": 1, "alarm_id": "a", "state": "active", "priority": "medium", "kind": "physiological", "bed": "03",
         "message": "SpO2 86 < 90", "since_ms": 0, "simulated": True},
        {"time": 2, "alarm_id": "b", "state": "active", "priority": "low", "kind": "technical", "bed": "05",
         "message": "SpO2 probe off", "since_ms": 0, "simulated": False},
        {"time": 3, "alarm_id": "b", "state": "cleared", "priority": "low", "kind": "technical", "bed": "05",
         "message": "SpO2 probe off", "since_ms": 0, "simulated": False},
        {"time": 4, "alarm_id": "c", "state": "latched", "priority": "high", "kind": "physiological", "bed": "07",
         "message": "SpO2 78 < 80", "since_ms": 5, "simulated": False},
        {"time": 5, "alarm_id": "a", "state": "acked", "priority": "medium", "kind": "physiological", "bed": "03",
         "message": "SpO2 85 < 90", "since_ms": 0, "simulated": True},
    ]
    live = active_alarms(rows)
    assert [(a["alarm_id"], a["state"]) for a in live] == [("c", "latched"), ("a", "acked")]
    beds = [{"time": 0, "bed": "03", "device": "d-03", "hr": 80, "spo2": 85, "temp": 37.0, "pi": 1.0,
             "sqi": 0.9, "probe": "ok", "sim": True}]
    out = text_of(render("w1", beds, {}, 0, alarms=live, news2={"03": {"score": 6, "band": "medium", "partial": True}}))
    assert "*** bed 07  SpO2 78 < 80" in out and "(latched: acknowledge)" in out
    assert "** bed 03  SpO2 85 < 90" in out and "(acknowledged) [SIMULATED]" in out
    assert "probe off" not in out
    row = next(line for line in out.splitlines() if "d-03" in line)
    assert "6p" in row
    assert "none" in text_of(render("w1", [], {}, 0, alarms=[]))


def test_values_are_coloured_by_the_limits_in_force_for_that_bed():
    # Bed 05's patient has SpO2 88 as their limit and a pulse limit of 130; bed 06 has no
    # limits point yet and is coloured by the built-in limits (gateway.clinical.rules).
    from gateway.clinical.rules import Limits, limits_in_force, parse_overrides

    patient = parse_overrides(["spo2_low.limit=88", "spo2_low.clear=90", "hr_high.limit=130", "hr_high.clear=125"])
    own = limits_in_force(Limits().settings_for("w1", "05", patient))
    beds = [{"time": 0, "bed": b, "device": f"d-{b}", "hr": 125, "spo2": 89, "temp": 37.0, "pi": 1.0,
             "sqi": 0.9, "probe": "ok", "sim": False} for b in ("05", "06")]
    table = render("w1", beds, {}, 0, limits={"05": own}).renderables[0]
    cells = {c.header: c._cells for c in table.columns}
    assert [cells["SpO2"][i].style for i in (0, 1)] == ["", "bold red"]
    assert [cells["HR"][i].style for i in (0, 1)] == ["", "bold yellow"]
    # Past a high-priority limit (pulse > 150, latching): red whatever the parameter.
    beds[1]["hr"] = 160
    table = render("w1", beds, {}, 0, limits={"05": own}).renderables[0]
    assert {c.header: c._cells for c in table.columns}["HR"][1].style == "bold red"
