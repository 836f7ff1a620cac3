"""Alarm notifications end to end: simulated ward -> Mosquitto -> real gateway -> apprise ->
a real local SMTP server (aiosmtpd) and a real local webhook receiver (http.server).

One simulated ward of four beds reads SpO2 75 throughout; admitting a patient to a bed
raises its high-priority ``spo2_desat`` alarm 5 s later, so each stage controls when its
alarm comes:

1. receivers up: bed 01's alarm arrives once by mail and once by webhook;
2. receivers down when bed 02's alarm is raised; the gateway retries, is stopped (SIGTERM)
   with the notification pending, the receivers come back, the gateway starts again: the
   notification arrives once;
3. the same for bed 03 with SIGKILL;
4. bed 04's webhook POST is held open by the receiver and the gateway is stopped (SIGTERM)
   while it is in flight: the stop waits for the send, the receiver answers, and the
   restarted gateway sends nothing again.

At the end the outbox is empty (nothing more can be sent) and every bed's alarm arrived
exactly once per target, none lost, none twice. Every wait is a ``wait_until``.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from provisioning.stack.services import free_port, wait_until
from provisioning.stack.ward import Ward

pytestmark = pytest.mark.services

WARD = "nt"
HOOK_SECRET = "s3cr3t-hook-pass"
IN_FLIGHT = "stopping: waiting up to 20 s for the notification in flight to ward-phones #2 json://127.0.0.1"
SCENARIO = """
[[bed]]
beds = [1, 2, 3, 4]
[[bed.phase]]
at_s = 0
spo2 = 75
"""


class Mailbox:
    """aiosmtpd on a fixed loopback port, started and stopped at will; keeps every message."""

    def __init__(self, port: int):
        self.port = port
        self.messages: list[email.message.EmailMessage] = []
        self.controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    def for_bed(self, bed: str) -> list[tuple[str, str]]:
        out = []
        for m in list(self.messages):
            body = m.get_body(("plain",)).get_content().replace("\r\n", "\n")  # SMTP lines end in CRLF
            if f"Bed: {bed}\n" in body:
                out.append((str(m["subject"]), body))
        return out


class Webhook:
    """A JSON webhook receiver on a fixed loopback port; keeps (headers, body) of each POST.
    After ``hold()``, the next POST is kept but not answered until ``release()``: a send in
    flight for as long as the test wants (``arrived`` is set when it came)."""

    def __init__(self, port: int):
        self.port = port
        self.posts: list[tuple[dict, dict]] = []
        self.server: ThreadingHTTPServer | None = None
        self.arrived = threading.Event()
        self._holding = False
        self._release = threading.Event()

    def hold(self) -> None:
        self.arrived.clear()
        self._release.clear()
        self._holding = True

    def release(self) -> None:
        self._holding = False
        self._release.set()

    def start(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((dict(self.headers), json.loads(data)))
                if hook._holding:
                    hook.arrived.set()
                    hook._release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def for_bed(self, bed: str) -> list[tuple[dict, dict]]:
        return [(h, b) for h, b in list(self.posts) if f"Bed: {bed}\n" in b["message"]]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notify")
    mail, hook = Mailbox(free_port()), Webhook(free_port())
    urls = tmp / "notify-urls"
    urls.write_text(
        "# one apprise URL per line\n"
        f"mailto://127.0.0.1:{mail.port}?from=wardwatch@ward.example&to=nurse@ward.example\n"
        f"json://hook:{HOOK_SECRET}@127.0.0.1:{hook.port}/alarms\n"
    )
    scenario = tmp / "scenario.toml"
    scenario.write_text(SCENARIO)
    ward = Ward(tmp / "ward", WARD, beds=4)
    gw = ward.gateway
    with open(gw.config, "a") as f:  # GatewayProcess writes no [notify]: add ours
        f.write(
            f'\n[[notify.routes]]\nname = "ward-phones"\nwards = ["{WARD}"]\npriorities = ["high"]\n'
            f'events = ["raised", "escalated"]\nurls_file = "{urls}"\nrate_per_min = 30\nremind_s = 0\n'
            "\n[notify.retry]\nmax_attempts = 1000\nbase_s = 0.2\nmax_s = 1.0\n"
        )
    notify = lambda: gw.health().get("notify") or {}  # noqa: E731
    stages = {}
    with ward:
        try:
            mail.start()
            hook.start()
            ward.start_sim("--scenario", str(scenario), "--duration", "300", "--seed", "3")

            def admit(bed: str) -> None:
                gw.cli("patients", "admit", "--ward", WARD, "--bed", bed, "--patient", f"MRN-{bed}", "--user", "nurse.a")

            # 1. Receivers up.
            admit("01")
            wait_until(lambda: mail.for_bed("01") and hook.for_bed("01"), 30, "bed 01's mail and webhook")
            wait_until(lambda: notify().get("pending") == 0, 10, "an empty outbox")

            # 2. and 3. Receivers down, the gateway stopped with the notice pending, then all back.
            for bed, stop in (("02", gw.stop), ("03", gw.kill)):
                mail.stop()
                hook.stop()
                admit(bed)
                wait_until(lambda: notify().get("pending") == 2 and notify().get("retries", 0) >= 4, 30,
                           f"bed {bed}'s notices failing and pending")
                stages[bed] = dict(notify())
                assert not mail.for_bed(bed) and not hook.for_bed(bed)
                stop()
                mail.start()
                hook.start()
                gw.start()
                wait_until(lambda: mail.for_bed(bed) and hook.for_bed(bed), 30, f"bed {bed}'s mail and webhook")
                wait_until(lambda: notify().get("pending") == 0, 10, "an empty outbox")

            # 4. SIGTERM while the webhook POST is in flight: the stop waits for it.
            hook.hold()
            admit("04")
            wait_until(hook.arrived.is_set, 30, "bed 04's webhook POST, held open by the receiver")
            stopper = threading.Thread(target=gw.stop)
            stopper.start()
            wait_until(lambda: IN_FLIGHT in gw.log.read_text(), 30, "the stop to wait for the send in flight")
            hook.release()
            stopper.join(60)
            assert not stopper.is_alive()
            gw.start()
            wait_until(lambda: mail.for_bed("04"), 30, "bed 04's mail")
            wait_until(lambda: notify().get("pending") == 0, 10, "an empty outbox")
            stages["04"] = dict(notify())
            stages["end"] = dict(notify())
            yield {"mail": mail, "hook": hook, "stages": stages, "log": gw.log.read_text()}
        finally:
            hook.release()
            mail.stop()
            hook.stop()


def test_an_alarm_arrives_once_by_mail_and_webhook_with_bed_value_limit_priority_and_simulated(run):
    (subject, body), = run["mail"].for_bed("01")
    assert subject.startswith("[SIMULATED] HIGH alarm raised: nt/01 SpO2 ")
    assert body.startswith("SIMULATED: this alarm comes from a simulated device")
    value = int(re.search(r"^Value: (\d+) %$", body, re.M).group(1))
    assert 70 <= value < 80
    for line in ("Ward: nt", "Bed: 01", "Parameter: SpO2", "Limit: < 80 %", "Priority: high (physiological)",
                 "Alarm: spo2_desat: ", "Device: sim-nt-01"):
        assert line in body
    (headers, post), = run["hook"].for_bed("01")
    assert post["title"] == subject and post["message"].strip() == body.strip()
    key = re.search(r"^Idempotency-Key: (.+)$", body, re.M).group(1)
    assert headers["X-Idempotency-Key"] == key == post["idempotency_key"]
    assert key.startswith("nt/01/spo2_desat/") and "/raised/" in key


@pytest.mark.parametrize("bed, how", [("02", "SIGTERM"), ("03", "SIGKILL")])
def test_a_restart_while_the_notice_is_pending_neither_loses_nor_duplicates_it(run, bed, how):
    stage = run["stages"][bed]
    assert stage["pending"] == 2 and stage["failed"] == 0  # both targets down, nothing given up
    mails, posts = run["mail"].for_bed(bed), run["hook"].for_bed(bed)
    assert len(mails) == 1 and len(posts) == 1, (how, mails, posts)
    assert f"Bed: {bed}" in mails[0][1] and "Limit: < 80 %" in mails[0][1]
    assert posts[0][0]["X-Idempotency-Key"] == posts[0][1]["idempotency_key"]


def test_a_stop_during_a_send_waits_for_it_and_the_restart_sends_nothing_again(run):
    stage = run["stages"]["04"]
    assert stage["resent_after_crash"] == 0 and stage["failed"] == 0  # the row was "sent" when the gateway stopped
    assert len(run["mail"].for_bed("04")) == 1 and len(run["hook"].for_bed("04")) == 1
    assert IN_FLIGHT in run["log"] and "still in flight" not in run["log"]


def test_exactly_one_per_alarm_and_target_over_the_whole_run_and_no_secret_logged(run):
    assert run["stages"]["end"]["pending"] == 0 and run["stages"]["end"]["failed"] == 0
    assert len(run["mail"].messages) == 4 and len(run["hook"].posts) == 4
    keys = [h["X-Idempotency-Key"] for h, _ in run["hook"].posts]
    assert len(set(keys)) == 4
    log = run["log"]
    assert HOOK_SECRET not in log
    assert "notification sent to ward-phones #2 json://127.0.0.1" in log
    assert "retrying in" in log
