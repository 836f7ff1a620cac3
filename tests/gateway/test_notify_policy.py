"""The notification policy (gateway/notify_policy.py), from tables: routing, text, rate limit
with its suppression summary, unacknowledged reminders, retry schedule; and the config's
[notify] section (keys, lines, secrets)."""

from __future__ import annotations

import pytest

from gateway import config
from gateway.clinical.engine import Alarm, AlarmEvent
from gateway.notify_policy import Policy, Retry, Route, event_id, matches, render, retry_at
from gateway.sinks.notify import target_label, with_idempotency_key

T0 = 1_796_000_000_000  # 2026-11-30 (epoch ms)


def alarm(bed="03", code="spo2_desat", priority="high", kind="physiological", ward="w1", state="active",
          value=75.0, limit=80.0, simulated=False, message="SpO2 75 < 80") -> Alarm:
    return Alarm(id=f"{ward}/{bed}/{code}/{T0}", ward=ward, bed=bed, device=f"sim-{ward}-{bed}", code=code, kind=kind,
                 priority=priority, state=state, message=message, since_ms=T0 - 5000, raised_ms=T0, value=value,
                 limit=limit, simulated=simulated)


def ev(event="raised", at=T0, **kw) -> AlarmEvent:
    return AlarmEvent(event, at, alarm(**kw))


def route(**kw) -> Route:
    return Route(**{"name": "r", "targets": ("t1",), **kw})


@pytest.mark.parametrize(
    "r, event, a, expected",
    [
        (route(), "raised", {}, True),
        (route(), "escalated", {}, True),
        (route(), "acked", {}, False),  # not by default
        (route(), "cleared", {}, False),
        (route(), "reminder", {}, False),
        (route(events=("raised", "cleared")), "cleared", {}, True),
        (route(), "raised", {"priority": "medium"}, False),
        (route(priorities=("medium", "high")), "raised", {"priority": "medium"}, True),
        (route(wards=("w2",)), "raised", {}, False),
        (route(wards=("w2", "w1")), "raised", {}, True),
        (route(wards=("*",)), "raised", {"ward": "w9"}, True),
        (route(kinds=("physiological",)), "raised", {"kind": "technical", "code": "device_offline"}, False),
        (route(kinds=("technical",), priorities=("medium",)), "raised",
         {"kind": "technical", "code": "device_offline", "priority": "medium"}, True),
    ],
)
def test_routing(r, event, a, expected):
    assert matches(r, event, alarm(**a)) is expected
    out = Policy([r]).on_event(AlarmEvent(event, T0, alarm(**a)), T0)
    assert len(out) == (1 if expected else 0)


@pytest.mark.parametrize(
    "a, expect_in_body",
    [
        ({}, ["Ward: w1", "Bed: 03", "Parameter: SpO2", "Value: 75 %", "Limit: < 80 %", "Priority: high (physiological)",
              "Time: 2026-11-30 ", "Device: sim-w1-03"]),
        ({"code": "hr_extreme_high", "value": 162, "limit": 150, "message": "Pulse 162 > 150"},
         ["Parameter: Pulse", "Value: 162 /min", "Limit: > 150 /min"]),
        ({"code": "temp_high", "value": 39.44, "limit": 39.0, "priority": "low", "message": "Temp 39.4 > 39.0"},
         ["Parameter: Temperature", "Value: 39.4 °C", "Limit: > 39.0 °C", "Priority: low"]),
        ({"code": "device_offline", "kind": "technical", "value": None, "limit": None, "priority": "medium",
          "message": "No data for 30 s"}, ["Value: --", "Limit: --", "Priority: medium (technical)", "No data for 30 s"]),
    ],
)
def test_text_names_ward_bed_parameter_value_unit_limit_priority_time(a, expect_in_body):
    e = ev(**a)
    title, body = render(e.event, e.alarm, e.at_ms, event_id(e))
    for piece in expect_in_body:
        assert piece in body
    assert f"Idempotency-Key: {event_id(e)}" in body
    assert "SIMULATED" not in title + body
    assert title.startswith(f"{e.alarm.priority.upper()} alarm raised: w1/03 ")


def test_simulated_alarms_say_so_first_in_title_and_body():
    e = ev(simulated=True)
    title, body = render(e.event, e.alarm, e.at_ms, event_id(e))
    assert title.startswith("[SIMULATED] HIGH alarm raised: w1/03 SpO2 75 < 80")
    assert body.splitlines()[0].startswith("SIMULATED: ")


@pytest.mark.parametrize(
    "rate, times_s, sent_at_s",
    [
        (2, [0, 1, 2, 3], [0, 1]),
        (1, [0, 59, 60], [0, 60]),  # a sliding 60 s window
        (3, [0, 10, 20, 30, 65], [0, 10, 20, 65]),
        (10, [0, 1, 2], [0, 1, 2]),
    ],
)
def test_rate_limit_per_route(rate, times_s, sent_at_s):
    p = Policy([route(rate_per_min=rate)])
    sent = []
    for n, t in enumerate(times_s):
        if p.on_event(ev(bed=f"{n:02d}", at=T0 + t * 1000), T0 + t * 1000):
            sent.append(t)
    assert sent == sent_at_s
    assert p.suppressed_total == len(times_s) - len(sent_at_s)


def test_suppressed_alarms_are_summarised_not_dropped():
    p = Policy([route(rate_per_min=2, remind_s=0)])
    for n in range(5):
        p.on_event(ev(bed=f"{n:02d}", at=T0 + n), T0 + n)
    assert p.tick(T0 + 30_000) == []  # the window is still full
    (summary,) = p.tick(T0 + 60_000)
    assert summary.title == "3 more alarms suppressed by the rate limit (r)"
    assert summary.body.startswith("3 more alarms suppressed by the rate limit since 2026-11-30 ")
    for bed in ("02", "03", "04"):
        assert f"raised: w1/{bed} high SpO2 75 < 80" in summary.body
    assert p.tick(T0 + 61_000) == []  # said once


def test_the_next_notice_carries_the_summary_when_an_alarm_comes_first():
    p = Policy([route(rate_per_min=1, remind_s=0)])
    p.on_event(ev(bed="01"), T0)
    assert p.on_event(ev(bed="02", simulated=True), T0 + 1000) == []
    (notice,) = p.on_event(ev(bed="03", at=T0 + 61_000), T0 + 61_000)
    assert "w1/03" in notice.title
    assert "1 more alarms suppressed by the rate limit" in notice.body
    assert "w1/02 high SpO2 75 < 80 [SIMULATED]" in notice.body
    assert p.tick(T0 + 200_000) == []


def test_each_route_has_its_own_window():
    p = Policy([route(name="a", rate_per_min=1), route(name="b", rate_per_min=5)])
    got = [n.route for t in range(3) for n in p.on_event(ev(bed=f"0{t}"), T0 + t)]
    assert got == ["a", "b", "b", "b"]


@pytest.mark.parametrize(
    "then, state, reminders",
    [
        ("nothing", "active", [300, 600]),
        ("acked", "acked", []),
        ("cleared", "cleared", []),
        ("latched", "latched", [300, 600]),  # still unacknowledged
    ],
)
def test_unacknowledged_reminders(then, state, reminders):
    p = Policy([route(remind_s=300)])
    p.on_event(ev(), T0)
    if then != "nothing":
        p.on_event(ev(then, at=T0 + 1000, state=state), T0 + 1000)
    got = []
    for t in range(1, 700):
        for n in p.tick(T0 + t * 1000):
            got.append(t)
            assert n.title.startswith("HIGH alarm unacknowledged: w1/03")
            assert "Event: unacknowledged" in n.body
    assert got == reminders


def test_reminders_off_and_seeded_after_restart():
    p = Policy([route(remind_s=0)])
    p.on_event(ev(), T0)
    assert [n for t in range(0, 1000, 10) for n in p.tick(T0 + t * 1000)] == []
    q = Policy([route(remind_s=60)])
    q.seed([alarm(), alarm(bed="04", state="acked")], T0)
    assert [n.title for n in q.tick(T0 + 60_000)] == ["HIGH alarm unacknowledged: w1/03 SpO2 75 < 80"]


@pytest.mark.parametrize(
    "attempts, expected_delay_s",
    [(1, 5), (2, 10), (3, 20), (4, 40), (6, 160), (7, 300), (9, 300), (10, None), (11, None)],
)
def test_retry_schedule(attempts, expected_delay_s):
    r = Retry(max_attempts=10, base_s=5, max_s=300)
    got = retry_at(attempts, T0, r)
    assert (None if got is None else (got - T0) / 1000) == expected_delay_s


@pytest.mark.parametrize(
    "url, label",
    [
        ("mailto://user:secret@smtp.ward.example?to=a@b.example", "mailto://smtp.ward.example"),
        ("json://127.0.0.1:8080/hook", "json://127.0.0.1"),
        ("tgram://123456789:AAHtokenvalue/987654", "tgram://..."),
        ("ntfy://localhost/topic", "ntfy://localhost"),
    ],
)
def test_target_labels_never_show_secrets(url, label):
    assert target_label(url) == label


@pytest.mark.parametrize(
    "url, expected",
    [
        ("json://h.example/x", "json://h.example/x?%2BX-Idempotency-Key=k%2F1&%3Aidempotency_key=k%2F1"),
        ("form://h.example/x?a=1", "form://h.example/x?a=1&%2BX-Idempotency-Key=k%2F1"),
        ("mailto://h.example", "mailto://h.example"),
    ],
)
def test_webhooks_carry_the_idempotency_key(url, expected):
    assert with_idempotency_key(url, "k/1") == expected


# -- [notify] in the gateway config ---------------------------------------------------------

GOOD = """
[notify]
[[notify.routes]]
name = "phones"
wards = ["w1"]
priorities = ["high"]
urls_file = "credential:notify-urls"

[[notify.routes]]
name = "hook"
urls = ["json://127.0.0.1:9000/alarms"]
rate_per_min = 20
remind_s = 0

[notify.retry]
max_attempts = 5
"""


def test_config_routes_and_credential(tmp_path):
    f = tmp_path / "gw.toml"
    f.write_text(GOOD)
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "notify-urls").write_text("# phones\nmailto://u:pw@smtp.example?to=a@b.example\n\n")
    cfg = config.load(f, env={"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")})
    assert [r.name for r in cfg.notify.routes] == ["phones", "hook"]
    assert cfg.notify.routes[0].events == ["raised", "escalated", "unacknowledged"]
    assert cfg.notify_urls(0) == ["mailto://u:pw@smtp.example?to=a@b.example"]
    assert cfg.notify_urls(1) == ["json://127.0.0.1:9000/alarms"]
    assert cfg.notify.retry.max_attempts == 5
    assert "pw" not in str(cfg.redacted()["notify"]) and "9000" not in str(cfg.redacted()["notify"])
    with pytest.raises(config.ConfigError, match=r"notify\.routes\[0\]\.urls_file: .*CREDENTIALS_DIRECTORY"):
        config.load(f, env={})


@pytest.mark.parametrize(
    "bad, expected",
    [
        (GOOD.replace("rate_per_min = 20", 'rate_per_min = "x"'), r"gw\.toml:12: notify\.routes\[1\]\.rate_per_min: Expected `int`"),
        (GOOD.replace('priorities = ["high"]', 'priorities = ["urgent"]'), r"gw\.toml:6: notify\.routes\[0\]\.priorities: "),
        (GOOD.replace("remind_s = 0", "remind = 0"), r"gw\.toml:13: notify\.routes\[1\]\.remind: .*unknown field"),
        (GOOD.replace('"json://127.0.0.1:9000/alarms"', '"json://user:hunter2@127.0.0.1:9000/alarms"'),
         r"gw\.toml:11: notify\.routes\[1\]\.urls: a URL with a password belongs in urls_file or urls_env"),
        (GOOD.replace('name = "hook"', 'name = "phones"'), r"gw\.toml:10: notify\.routes\[1\]\.name: .*used twice"),
        (GOOD.replace('urls_file = "credential:notify-urls"', ""), r"gw\.toml:3: notify\.routes\[0\]\.urls: a route needs"),
        (GOOD.replace("max_attempts = 5", "max_attempts = 0"), r"gw\.toml:16: notify\.retry\.max_attempts: Expected `int` >= 1"),
    ],
)
def test_config_errors_name_key_and_line(tmp_path, bad, expected):
    f = tmp_path / "gw.toml"
    f.write_text(bad)
    with pytest.raises(config.ConfigError, match=expected) as err:
        config.load(f, env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert "hunter2" not in str(err.value)


def test_urls_env(tmp_path):
    f = tmp_path / "gw.toml"
    f.write_text('[[notify.routes]]\nurls_env = "WW_URLS"\n')
    cfg = config.load(f, env={})
    assert cfg.notify.routes[0].name == "route1"
    assert cfg.notify_urls(0, env={"WW_URLS": "json://a.example/x  mailto://b.example"}) == [
        "json://a.example/x", "mailto://b.example"]
    with pytest.raises(config.ConfigError, match=r"notify\.routes\[0\]\.urls_env: environment variable WW_URLS"):
        cfg.notify_urls(0, env={})
