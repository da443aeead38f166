"""Money is charged once: invoice + attempt keys, a locked invoice, no gateway call inside a
transaction, and crashes between intent and answer resolved from the gateway's idempotent answer.
The runtime check on outside calls and the tax side are in test_tax_outside_transactions.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from billing import commands as billing
from billing import jobs
from billing.acl.payments import SandboxGateway
from billing.commands.refunds import _request_refund
from billing.models import Invoice, InvoiceStatus, Payment, PaymentAttempt, PaymentStatus
from billing.ports import payment_gateway
from sharedkernel.bus import run_deliveries
from sharedkernel.correlation import current_cause
from sharedkernel.models import OPEN_STATUSES, EventDelivery
from sharedkernel.values import Money
from subscriptions import commands as subs
from tests.billing.helpers import WorkerDied, customer, plan
from tests.conftest import ROOT, _database_url
from tests.fakes.servers import FakeStripe
from tests.helpers import api_client, event_types, staff_user


class SlowSandbox(SandboxGateway):
    """The sandbox with a real gateway's latency, so concurrent callers overlap at the gateway."""

    def charge(self, **kwargs):
        time.sleep(0.2)
        return super().charge(**kwargs)


class DyingSandbox(SandboxGateway):
    """The sandbox in a worker that dies before (``when="before"``) or after the charge reached it."""

    when = "before"

    def charge(self, **kwargs):
        if self.when == "before":
            raise WorkerDied()
        result = super().charge(**kwargs)
        if self.when == "after":
            raise WorkerDied()
        return result


def run_all_but(handler: str) -> None:
    """Run every open delivery except ``handler``'s until none is left (the chain stops right before it)."""
    while True:
        rows = list(
            EventDelivery.objects.filter(status__in=OPEN_STATUSES)
            .exclude(handler=handler)
            .order_by("pk")
            .values_list("handler", "pk")
        )
        if not rows:
            return
        for name, pk in rows:
            run_deliveries(name, [pk])


def open_ids(handler: str) -> list[int]:
    return list(EventDelivery.objects.filter(status__in=OPEN_STATUSES, handler=handler).values_list("pk", flat=True))


def finalized_invoice_waiting_for_the_payment_policy(drain, **kw) -> Invoice:
    pro = plan(price="30.00 USD")
    c = customer(drain, country="GB", region="", **kw)
    subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    run_all_but("billing.process_payment")
    invoice = Invoice.objects.get(customer_id=c.id)
    assert invoice.status == InvoiceStatus.FINALIZED and not Payment.objects.filter(invoice_id=invoice.id).exists()
    return invoice


def lock_payments_until_waiting(threads, *, waiters: int, timeout: float = 20) -> bool:
    """Hold a SHARE lock on the payments table (reads and row locks go on, inserts wait), start ``threads``,
    and return once ``waiters`` sessions of this database wait for a lock (or the timeout passed: False)."""
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {Payment._meta.db_table} IN SHARE MODE")
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE NOT l.granted AND a.datname = current_database()"
            )
            if cursor.fetchone()[0] >= waiters:
                return True
            time.sleep(0.02)
    return False


def charges_for(gateway: SandboxGateway, invoice: Invoice) -> list:
    return [c for c in gateway.charges if c[0].startswith(f"invoice_{invoice.id}_")]


# -- the race ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_pay_requests_and_the_payment_policy_charge_the_invoice_once(drain, gateway):
    if connection.vendor != "postgresql":
        pytest.skip("lines the callers up with PostgreSQL's pg_locks")
    # given a finalized invoice whose InvoiceFinalized is about to reach the payment policy
    sandbox = gateway("tests.billing.test_charging.SlowSandbox")
    invoice = finalized_invoice_waiting_for_the_payment_policy(drain)
    policy_deliveries = open_ids("billing.process_payment")
    staff = staff_user()
    api_client(staff)  # its token exists before the threads ask for it
    start = threading.Barrier(11)
    responses, errors = [], []

    def pay():
        try:
            client = api_client(staff)
            start.wait()
            responses.append(client.post(f"/api/v1/invoices/{invoice.id}/pay/"))
        except BaseException as exc:  # pragma: no cover - shown in the assertion
            errors.append(exc)
        finally:
            connection.close()

    def policy():
        try:
            start.wait()
            run_deliveries("billing.process_payment", policy_deliveries)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)
        finally:
            connection.close()

    # when ten staff requests and the policy go at once — lined up behind a lock that lets everyone read
    # the payments table but nobody write it, so that all eleven ask "is there a payment yet?" together
    threads = [threading.Thread(target=pay) for _ in range(10)] + [threading.Thread(target=policy)]
    with transaction.atomic():
        lined_up = lock_payments_until_waiting(threads, waiters=11)
    for thread in threads:
        thread.join(60)
    assert lined_up

    # then the gateway charged once, there is one payment with one attempt, and nobody got a 5xx
    assert errors == []
    assert len(responses) == 10 and all(r.status_code in (200, 409) for r in responses), [
        (r.status_code, r.content[:200]) for r in responses
    ]
    refused = {r.json()["error"]["code"] for r in responses if r.status_code == 409}
    assert refused <= {"payment_in_progress", "invalid_transition"}
    assert len(charges_for(sandbox, invoice)) == 1
    payment = Payment.objects.get(invoice_id=invoice.id)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.attempts == 1
    assert PaymentAttempt.objects.filter(payment=payment).count() == 1
    assert event_types(payment.id).count("billing.PaymentSucceeded") == 1
    drain()
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID


@pytest.mark.django_db(transaction=True)
def test_pay_while_an_attempt_is_in_flight_answers_409_payment_in_progress(drain, gateway):
    # given the policy recorded the first attempt and its worker is on the way to the gateway
    sandbox = gateway("billing.acl.payments.SandboxGateway")
    invoice = finalized_invoice_waiting_for_the_payment_policy(drain)
    with transaction.atomic():
        [payment_id] = billing.collect_many([billing.Work(str(invoice.id), timezone.now(), current_cause())])
    # when staff press "pay now"
    response = api_client(staff_user()).post(f"/api/v1/invoices/{invoice.id}/pay/")
    # then it is refused with a clear code and nothing is charged; voiding waits for the answer too
    assert response.status_code == 409 and response.json()["error"]["code"] == "payment_in_progress"
    void = api_client(staff_user("other")).post(f"/api/v1/invoices/{invoice.id}/void/", {"reason": "x"})
    assert void.status_code == 409 and void.json()["error"]["code"] == "payment_in_progress"
    assert charges_for(sandbox, invoice) == []
    assert billing.charge_in_flight([payment_id]) == 1
    assert len(charges_for(sandbox, invoice)) == 1
    assert Payment.objects.get(pk=payment_id).status == PaymentStatus.SUCCEEDED


# -- crashes between intent and answer ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_worker_dying_around_the_gateway_call_is_resolved_with_exactly_one_charge(drain, gateway, settings, when):
    # given the payment policy's worker dies before / after its charge reached the gateway
    DyingSandbox.when = when
    dying = gateway("tests.billing.test_charging.DyingSandbox")
    invoice = finalized_invoice_waiting_for_the_payment_policy(drain)
    with pytest.raises(WorkerDied):
        run_deliveries("billing.process_payment", open_ids("billing.process_payment"))
    payment = Payment.objects.get(invoice_id=invoice.id)
    assert payment.status == PaymentStatus.PROCESSING  # the intent committed, the answer never came
    assert event_types(payment.id) == ["billing.PaymentAttempted"]
    assert len(charges_for(dying, invoice)) == (1 if when == "after" else 0)

    # when the resolver runs: not yet while the attempt is young, then once it is stale
    DyingSandbox.when = "never"
    assert jobs.resolve_charges(timezone.now(), None) == 0
    settings.BILLING_CHARGE_RESOLVE_AFTER_SECONDS = 0
    assert jobs.resolve_charges(timezone.now(), None) == 1

    # then exactly one charge was made and recorded, with the same invoice + attempt key
    [charge] = charges_for(dying, invoice)
    assert charge[0] == f"invoice_{invoice.id}_attempt_1"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and payment.attempts == 1
    assert event_types(payment.id) == ["billing.PaymentAttempted", "billing.PaymentSucceeded"]
    assert jobs.resolve_charges(timezone.now(), None) == 0
    drain()
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.PAID


CRASHING_WORKER = """
import os, sys
import django
django.setup()
from billing.acl.payments import StripeGateway
real = StripeGateway.charge
def charge_then_die(self, **kwargs):
    real(self, **kwargs)
    os._exit(17)  # the worker is killed right after Stripe took the charge
StripeGateway.charge = charge_then_die
from sharedkernel.bus import run_deliveries
run_deliveries("billing.process_payment", [int(x) for x in sys.argv[1].split(",")])
"""


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_process_after_stripe_charged_is_resolved_from_stripes_idempotent_answer(
    drain, settings, stripe
):
    # given Stripe (a local fake that answers a repeated Idempotency-Key with its first answer)
    with stripe() as stripe_server:
        invoice = finalized_invoice_waiting_for_the_payment_policy(drain, card="pm_ok")
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(connection.settings_dict),
            "BILLING_PAYMENT_GATEWAY": "stripe",
            "STRIPE_API_BASE": stripe_server.url,
            "STRIPE_API_KEY": "sk_test_fake",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "TESTING": "1",
            "EVENT_DISPATCH": "manual",
        }
        # when a real worker process runs the payment policy and is killed after Stripe charged
        ids = ",".join(str(pk) for pk in open_ids("billing.process_payment"))
        done = subprocess.run(
            [sys.executable, "-c", CRASHING_WORKER, ids], env=env, cwd=ROOT, capture_output=True, timeout=120
        )
        assert done.returncode == 17, done.stderr.decode()[-2000:]
        payment = Payment.objects.get(invoice_id=invoice.id)
        assert payment.status == PaymentStatus.PROCESSING
        # and the resolver asks again
        settings.BILLING_CHARGE_RESOLVE_AFTER_SECONDS = 0
        assert jobs.resolve_charges(timezone.now(), None) == 1

        # then Stripe saw the same invoice + attempt key twice and charged once; we recorded its charge
        key = f"invoice_{invoice.id}_attempt_1"
        intents = [r for r in stripe_server.requests if r["path"] == "/v1/payment_intents"]
        assert [r["headers"]["Idempotency-Key"] for r in intents] == [key, key]
        payment.refresh_from_db()
        assert (
            payment.status == PaymentStatus.SUCCEEDED and payment.gateway_reference == FakeStripe.answered[key][1]["id"]
        )
        assert PaymentAttempt.objects.filter(payment=payment).count() == 1


@pytest.mark.django_db(transaction=True)
def test_stripe_is_sent_the_invoice_and_attempt_as_idempotency_key_for_each_attempt(drain, settings, stripe):
    with stripe() as stripe_server:
        invoice = finalized_invoice_waiting_for_the_payment_policy(drain, card="pm_declined")
        drain()
        payment = Payment.objects.get(invoice_id=invoice.id)
        assert payment.status == PaymentStatus.FAILED and payment.failure_code == "insufficient_funds"
        # a new card, then "pay now": a second attempt with its own key
        billing.update_payment_method(customer_id=str(invoice.customer_id), token="pm_ok")
        drain()
        intents = [r for r in stripe_server.requests if r["path"] == "/v1/payment_intents"]
        assert [r["headers"]["Idempotency-Key"] for r in intents] == [
            f"invoice_{invoice.id}_attempt_1",
            f"invoice_{invoice.id}_attempt_2",
        ]
        assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED


# -- the sandbox answers like Stripe -------------------------------------------------------------


def test_the_sandbox_answers_a_repeated_key_with_its_first_answer_and_charges_once():
    sandbox = SandboxGateway()
    first = sandbox.charge(amount=Money("10.00", "USD"), token="pm_card_visa", idempotency_key="k1", description="x")
    again = sandbox.charge(amount=Money("10.00", "USD"), token="pm_card_visa", idempotency_key="k1", description="x")
    assert first == again and [c[0] for c in sandbox.charges] == ["k1"]
    declined = sandbox.charge(
        amount=Money("10.00", "USD"), token="pm_card_chargeDeclined", idempotency_key="k2", description="x"
    )
    assert not declined.succeeded and [c[0] for c in sandbox.charges] == ["k1"]


# -- refunds ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_refund_whose_answer_was_lost_is_resolved_once_and_a_second_refund_waits(drain, settings, gateway):
    sandbox = gateway("billing.acl.payments.SandboxGateway")
    pro = plan(price="30.00 USD")
    c = customer(drain, country="GB", region="")
    subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    payment = Payment.objects.get(customer_id=c.id)
    # the refund's intent committed; the worker died before the gateway answered
    request = _request_refund(payment_id=str(payment.id), amount=Money("10.00", "USD"), reason="goodwill", clock=None)
    staff = api_client(staff_user())
    second = staff.post(
        f"/api/v1/payments/{payment.id}/refund/",
        {"amount": {"amount": "5.00", "currency": "USD"}, "reason": "more"},
        format="json",
    )
    assert second.status_code == 409 and second.json()["error"]["code"] == "refund_in_progress"
    settings.BILLING_CHARGE_RESOLVE_AFTER_SECONDS = 0
    assert jobs.resolve_charges(timezone.now(), None) == 1
    payment.refresh_from_db()
    assert payment.amount_refunded == Money("10.00", "USD") and payment.refund_in_flight is None
    assert event_types(payment.id).count("billing.RefundIssued") == 1
    assert request == 1 and payment.refunds.get().credit_note_number.startswith("CN-")
    assert sandbox is payment_gateway()  # the one sandbox of this process answered both times
    # the same refund asked again is the gateway's first answer, nothing more is refunded
    assert jobs.resolve_charges(timezone.now(), None) == 0


@pytest.mark.django_db(transaction=True)
def test_no_answer_from_stripe_keeps_the_attempt_in_flight_until_the_same_key_is_answered(drain, settings, stripe):
    # given Stripe goes away after the customer's card was checked
    with stripe() as stripe_server:
        invoice = finalized_invoice_waiting_for_the_payment_policy(drain, card="pm_ok")
    # when the payment policy charges: no answer at all (we cannot know whether Stripe charged)
    run_deliveries("billing.process_payment", open_ids("billing.process_payment"))
    payment = Payment.objects.get(invoice_id=invoice.id)
    assert payment.status == PaymentStatus.PROCESSING and not PaymentAttempt.objects.filter(payment=payment).exists()
    # then, Stripe back, the resolver asks again with the same key and records its answer
    with stripe(fresh=False) as stripe_server:
        settings.BILLING_CHARGE_RESOLVE_AFTER_SECONDS = 0
        assert jobs.resolve_charges(timezone.now(), None) == 1
        [intent] = [r for r in stripe_server.requests if r["path"] == "/v1/payment_intents"]
    assert intent["headers"]["Idempotency-Key"] == f"invoice_{invoice.id}_attempt_1"
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and payment.attempts == 1
