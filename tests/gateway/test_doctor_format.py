"""`wardwatch doctor`: the pure verdicts and the output line, from tables."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.cli import doctor
from gateway.cli.doctor import FAIL, OK, WARN, Result

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def cert_der(not_after: dt.datetime) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=800)).not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    "days, level, text",
    [
        (-3, FAIL, "expired"),
        (10, WARN, "10 days left"),
        (29, WARN, "29 days left"),
        (31, OK, "31 days left"),
        (400, OK, "400 days left"),
    ],
)
def test_tls_days_left_and_verdict_from_a_certificate(days, level, text):
    not_after = doctor.not_after_of(cert_der(NOW + dt.timedelta(days=days)))
    assert not_after == NOW + dt.timedelta(days=days)
    r = doctor.tls_verdict(not_after, NOW)
    assert (r.name, r.level) == ("tls", level)
    assert text in r.message
    assert not_after.strftime("%Y-%m-%d") in r.message
    assert bool(r.fix) == (level != OK)


def test_tls_verification_error_fails_even_with_time_left():
    r = doctor.tls_verdict(NOW + dt.timedelta(days=400), NOW, "self-signed certificate")
    assert r.level == FAIL and "self-signed certificate" in r.message and "mqtt.cafile" in r.fix


@pytest.mark.parametrize(
    "status, level",
    [("ok", OK), ("degraded", WARN), ("holding", FAIL), ("failed", FAIL), ("down", FAIL), ("weird", FAIL)],
)
def test_health_verdicts(status, level):
    r = doctor.health_verdict({"status": status}, "http://127.0.0.1:1/healthz")
    assert r.level == level
    if status != "ok":
        assert r.fix and status in r.message


def test_health_no_answer_fails_and_spool_is_unknown():
    assert doctor.health_verdict(None, "http://h:1/healthz").level == FAIL
    assert doctor.spool_verdict(None).level == WARN


@pytest.mark.parametrize(
    "body, level",
    [({"spool_batches": 0, "spool_bytes": 0}, OK), ({"spool_batches": 3, "spool_bytes": 900}, WARN)],
)
def test_spool_verdicts(body, level):
    assert doctor.spool_verdict(body).level == level


@pytest.mark.parametrize(
    "offset, ntp, level, text",
    [(0.3, "yes", OK, "NTP synchronized"), (-4.9, None, OK, "NTP state unknown"),
     (5.5, "no", FAIL, "NTP not synchronized"), (-60.0, "yes", FAIL, "-60.0s"), (None, None, WARN, "cannot")],
)
def test_clock_verdicts(offset, ntp, level, text):
    r = doctor.clock_verdict(offset, ntp, "http://db:8086")
    assert r.level == level and text in r.message


def test_silent_devices_include_never_published_and_stale():
    now = 1_000_000_000
    last = {"a": now - 1000, "b": now - 301_000, "c": now - 299_000}
    r = doctor.silent_verdict(["a", "b", "c", "d"], last, now)
    assert r.level == WARN and "2 of 4" in r.message and "b, d" in r.message
    assert doctor.silent_verdict(["a", "c"], last, now).level == OK
    assert doctor.silent_verdict([], {}, now).level == OK


def test_mqtt_refusal_names_reason_and_fix():
    r = doctor.mqtt_refused("Not authorized")
    assert doctor.format_result(r) == (
        "FAIL mqtt: connection refused: not authorized -> check mqtt.username and the password file, "
        "and the broker ACL"
    )


@pytest.mark.parametrize(
    "result, line",
    [
        (Result("spool", OK, "empty", "ignored when OK"), "OK   spool: empty"),
        (Result("spool", WARN, "3 batches", "bring InfluxDB back"), "WARN spool: 3 batches -> bring InfluxDB back"),
        (Result("influx", FAIL, "down"), "FAIL influx: down"),
    ],
)
def test_format_result(result, line):
    assert doctor.format_result(result) == line


def test_exit_code_fails_only_on_fail():
    assert doctor.exit_code([Result("a", OK, ""), Result("b", WARN, "")]) == 0
    assert doctor.exit_code([Result("a", OK, ""), Result("b", FAIL, "")]) == 1


def test_database_of_bucket():
    assert doctor.database_of("wardwatch/autogen") == "wardwatch"
    assert doctor.database_of("wardwatch") == "wardwatch"


def test_a_missing_ca_file_is_a_fail_line_not_a_traceback(tmp_path):
    from gateway import config
    from gateway.cli.doctor import FAIL, check_mqtt

    cfg_file = tmp_path / "gw.toml"
    cfg_file.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = 1\ntls = true\ncafile = "{tmp_path / "nope.crt"}"\n')
    result = check_mqtt(config.load(cfg_file, env={}))
    assert result.level == FAIL and "mqtt.cafile" in result.message
