"""Notifications end to end: real chains, the real worker, a real SMTP server and webhook receivers on loopback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from notifications.models import Notification, WebhookDelivery
from notifications.webhooks import SIGNATURE_HEADER, verify
from tests.conftest import wait_until_handled
from tests.flows.api import make_plan, new_customer, settle

pytestmark = pytest.mark.flow


def customer_on_clock(staff, email, when="2025-03-01T09:00:00Z"):
    clock = staff.post("/api/v1/test-clocks/", {"frozen_time": when}, format="json").json()
    customer = new_customer(staff, "Ada", clock, email=email)
    settle()
    return clock, customer


def advance(staff, clock, to):
    assert staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": to}, format="json").status_code == 200
    settle()


def test_each_reaction_sends_exactly_one_email_with_the_right_content(staff, smtp_sink):
    address = "ada.mail@example.com"
    plan = make_plan(staff, "pro", "30.00", trial_days=14)
    clock, customer = customer_on_clock(staff, address)
    staff.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_visa"}, format="json")
    sub = staff.post(
        "/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan["id"], "trial": True}, format="json"
    ).json()
    settle()
    advance(staff, clock, "2025-03-12T09:00:01Z")  # 3 days before the trial ends: the reminder
    advance(staff, clock, "2025-03-15T09:00:01Z")  # trial ends: converted, invoiced, paid
    staff.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_chargeDeclined"}, format="json")
    advance(staff, clock, "2025-04-15T09:00:01Z")  # renewal declines
    for moment in (
        "2025-04-15T10:00:01Z",
        "2025-04-16T09:00:01Z",
        "2025-04-18T09:00:01Z",  # retries
        "2025-04-21T09:00:01Z",
        "2025-04-25T09:00:01Z",
    ):  # dunning steps 1 and 2
        advance(staff, clock, moment)
    staff.post(f"/api/v1/subscriptions/{sub['id']}/cancel/", {"reason": "too expensive"}, format="json")
    settle()

    subjects = [m["Subject"] for m in smtp_sink.to(address)]
    by_template = {}
    for note in Notification.objects.filter(email=address):
        by_template.setdefault(note.template, []).append(note)
    assert sorted(by_template) == [
        "cancelled",
        "dunning",
        "invoice",
        "payment_failed",
        "receipt",
        "trial_ended",
        "trial_reminder",
        "welcome",
    ]
    # one e-mail per event: one per template here, except one alert per declined attempt and one per dunning step
    assert {t: len(n) for t, n in by_template.items()} == {
        "welcome": 1,
        "trial_reminder": 1,
        "trial_ended": 1,
        "invoice": 2,
        "receipt": 1,
        "payment_failed": 6,
        "dunning": 2,
        "cancelled": 1,
    }
    assert len(subjects) == sum(len(n) for n in by_template.values())  # every logged e-mail reached the server
    assert all(n.status == "sent" for notes in by_template.values() for n in notes)

    texts = {m["Subject"]: smtp_sink.text(m) for m in smtp_sink.to(address)}
    invoice_mail = next(t for s, t in texts.items() if s.startswith("Invoice INV-2025-"))
    assert "30.00 USD" in invoice_mail and "/billing/invoices/" in invoice_mail
    assert any(s.startswith("Receipt for invoice INV-2025-") and "30.00 USD" in s for s in texts)
    alert = next(t for s, t in texts.items() if s.startswith("Your payment of 30.00 USD"))
    assert "declined" in alert and "/billing/payment-method/" in alert
    assert any(s.startswith("Reminder: invoice") for s in subjects)
    assert any(s.startswith("Final notice: invoice") for s in subjects)
    assert "FINAL NOTICE" in next(t for s, t in texts.items() if s.startswith("Final notice"))
    assert "Your Pro trial ends in 3 days" in subjects
    assert "Your Pro subscription is cancelled" in subjects


class Receiver(BaseHTTPRequestHandler):
    secret = ""
    failures_left = 0
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        ok = verify(type(self).secret, body, self.headers[SIGNATURE_HEADER])
        type(self).received.append({"event": json.loads(body), "verified": ok})
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(503)
        else:
            self.send_response(200 if ok else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.received, Receiver.failures_left = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks", Receiver
    server.shutdown()


def test_a_receiver_verifies_the_signature_of_what_it_receives(staff, receiver):
    url, state = receiver
    plan = make_plan(staff, "pro", "30.00")
    clock, customer = customer_on_clock(staff, "hooks@example.com")
    created = staff.post(
        "/api/v1/webhook-endpoints/", {"url": url, "events": ["*"], "customer": customer["id"]}, format="json"
    )
    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    state.secret = created.json()["secret"]
    assert "secret" not in staff.get(f"/api/v1/webhook-endpoints/{created.json()['id']}/").json()  # shown once
    staff.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_visa"}, format="json")
    staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan["id"]}, format="json")
    settle()
    types = [r["event"]["event_type"] for r in state.received]
    assert "subscriptions.SubscriptionCreated" in types and "billing.PaymentSucceeded" in types
    assert "billing.TaxCalculationFailed" not in types and not any(t.startswith("notifications.Webhook") for t in types)
    assert all(r["verified"] for r in state.received)
    assert len(types) == len(set((r["event"]["event_id"]) for r in state.received))  # each event once
    paid = next(r["event"] for r in state.received if r["event"]["event_type"] == "billing.PaymentSucceeded")
    assert paid["payload"]["amount"] == {"amount": "30.00", "currency": "USD"} and paid["correlation_id"]


def test_a_failing_receiver_gets_retries_on_schedule_then_succeeds(staff, receiver):
    url, state = receiver
    state.failures_left = 3
    clock, customer = customer_on_clock(staff, "retry@example.com", when="2025-03-01T09:00:00Z")
    endpoint = staff.post(
        "/api/v1/webhook-endpoints/",
        {"url": url, "events": ["billing.PaymentMethodUpdated"], "customer": customer["id"]},
        format="json",
    ).json()
    state.secret = endpoint["secret"]
    staff.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_visa"}, format="json")
    settle()
    [delivery] = WebhookDelivery.objects.filter(endpoint_id=endpoint["id"])
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("retrying", 1, 503)
    advance(staff, clock, "2025-03-01T09:01:00Z")  # +1 min: second attempt
    advance(staff, clock, "2025-03-01T09:06:00Z")  # +5 min: third
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and delivery.status == "retrying"
    advance(staff, clock, "2025-03-01T09:36:00Z")  # +30 min: fourth attempt succeeds
    log = staff.get(f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries/").json()["results"][0]
    assert log["status"] == "succeeded"
    assert [a["status_code"] for a in log["attempts_log"]] == [503, 503, 503, 200]
    assert [a["at"] for a in log["attempts_log"]] == [
        "2025-03-01T09:00:00Z",
        "2025-03-01T09:01:00Z",
        "2025-03-01T09:06:00Z",
        "2025-03-01T09:36:00Z",
    ]
    assert all(a["latency_ms"] >= 0 for a in log["attempts_log"])
    # and a redelivery from the API sends it once more
    again = staff.post(f"/api/v1/webhook-deliveries/{log['id']}/redeliver/")
    assert again.status_code == 200
    assert len([r for r in state.received if r["event"]["event_type"] == "billing.PaymentMethodUpdated"]) == 5


def test_a_slow_receiver_does_not_hold_up_another_endpoint(staff):
    from tests.notifications.receiver import Receiver as LoopbackReceiver

    clock, customer = customer_on_clock(staff, "two-hooks@example.com")
    with LoopbackReceiver() as fast, LoopbackReceiver(delay=6) as slow:
        for receiver in (fast, slow):  # the slow one registered last: it comes first in the fan-out
            created = staff.post(
                "/api/v1/webhook-endpoints/",
                {"url": receiver.url, "events": ["billing.PaymentMethodUpdated"], "customer": customer["id"]},
                format="json",
            ).json()
            receiver.secret = created["secret"]
        staff.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_visa"}, format="json")
        wait_until_handled()
        deadline = time.monotonic() + 4
        while not fast.received and time.monotonic() < deadline:
            time.sleep(0.05)
        # the fast endpoint has its event while the slow one is still answering
        assert fast.types() == ["billing.PaymentMethodUpdated"] and fast.received[0]["verified"]
        assert not WebhookDelivery.objects.filter(endpoint__url=slow.url, status="succeeded").exists()
        settle()
        assert WebhookDelivery.objects.get(endpoint__url=slow.url).status == "succeeded"
