"""Payment aggregate: attempts, retries on the DunningSchedule, dunning steps, refunds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.models import AttemptTrigger, Payment, PaymentInProgress, PaymentStatus, RefundTooLarge
from billing.values import DunningPlan, PaymentOutcome, PaymentResult
from sharedkernel.errors import InvalidTransition
from sharedkernel.values import Money
from tests.conftest import at

T0 = at("2025-03-01 00:00")
PLAN = DunningPlan(
    retry_offsets=(timedelta(hours=1), timedelta(hours=24), timedelta(hours=72)),
    escalation_offsets=(timedelta(days=3), timedelta(days=7), timedelta(days=14)),
)
OK = PaymentResult(PaymentOutcome.SUCCEEDED, "ch_1")
DECLINED = PaymentResult(PaymentOutcome.DECLINED, "ch_x", "card_declined", "Your card was declined.")


def payment(amount="49.99") -> Payment:
    return Payment.open(
        invoice_id="6a1f5e1e-0000-4000-8000-000000000003",
        invoice_number="INV-2025-000001",
        customer_id="6a1f5e1e-0000-4000-8000-000000000001",
        subscription_id=None,
        amount=Money(amount, "USD"),
        customer_name="Ada",
        customer_email="ada@example.com",
        plan_name="Pro",
        billing_reason="subscription_cycle",
        update_payment_method_url="http://x/billing/payment-method/",
        at=T0,
    )


def attempt(p: Payment, result: PaymentResult, when, trigger=AttemptTrigger.INITIAL):
    number = p.begin_attempt(trigger=trigger, payment_method="visa •••• 4242", token="pm_card_visa", at=when, since=T0)
    return p.record_result(result, plan=PLAN, attempt=number)


def names(p) -> list[str]:
    return [e.event_type.split(".")[1] for e in p.recorded_events]


def test_first_attempt_succeeds():
    p = payment()
    row = attempt(p, OK, T0)
    assert p.status == PaymentStatus.SUCCEEDED and p.gateway_reference == "ch_1"
    assert row.outcome == "succeeded" and row.number == 1
    assert names(p) == ["PaymentAttempted", "PaymentSucceeded"]
    with pytest.raises(InvalidTransition, match="nothing to collect"):
        attempt(p, OK, T0)


def test_an_attempt_in_flight_blocks_a_second_one_and_keys_the_charge_on_invoice_and_attempt():
    p = payment()
    number = p.begin_attempt(
        trigger=AttemptTrigger.INITIAL, payment_method="visa", token="pm_card_visa", at=T0, since=T0
    )
    assert p.status == PaymentStatus.PROCESSING and number == 1
    assert p.idempotency_key == "invoice_6a1f5e1e-0000-4000-8000-000000000003_attempt_1"
    with pytest.raises(PaymentInProgress):
        p.begin_attempt(trigger=AttemptTrigger.MANUAL, payment_method="visa", token="pm_card_visa", at=T0, since=T0)
    with pytest.raises(PaymentInProgress):
        p.cancel(at=T0)
    with pytest.raises(InvalidTransition, match="not in flight"):
        p.record_result(OK, plan=PLAN, attempt=2)
    p.record_result(DECLINED, plan=PLAN, attempt=1)
    assert p.status == PaymentStatus.FAILED and p.in_flight_token == ""
    p.begin_attempt(trigger=AttemptTrigger.MANUAL, payment_method="visa", token="pm_card_visa", at=T0, since=T0)
    assert p.idempotency_key.endswith("_attempt_2")


def test_declines_walk_1h_24h_72h_then_dunning_steps_then_exhaustion():
    p = payment()
    attempt(p, DECLINED, T0)
    assert p.next_retry_at == T0 + timedelta(hours=1)
    with pytest.raises(InvalidTransition, match="No retry"):
        attempt(p, DECLINED, T0 + timedelta(minutes=59), AttemptTrigger.RETRY)
    attempt(p, DECLINED, T0 + timedelta(hours=1), AttemptTrigger.RETRY)
    assert p.next_retry_at == T0 + timedelta(hours=24)
    attempt(p, DECLINED, T0 + timedelta(hours=24), AttemptTrigger.RETRY)
    assert p.next_retry_at == T0 + timedelta(hours=72)
    last = T0 + timedelta(hours=72)
    attempt(p, DECLINED, last, AttemptTrigger.RETRY)
    assert p.next_retry_at is None and p.dunning_started_at == last
    assert p.next_dunning_at == last + timedelta(days=3)
    assert names(p).count("PaymentFailed") == 4 and names(p)[-1] == "DunningStarted"

    with pytest.raises(InvalidTransition, match="No dunning step"):
        p.escalate(plan=PLAN, at=last + timedelta(days=2))
    assert p.escalate(plan=PLAN, at=last + timedelta(days=3)) is True
    step1 = p.recorded_events[-1]
    assert (step1.level, step1.final) == (1, False)
    assert p.escalate(plan=PLAN, at=last + timedelta(days=7)) is True
    assert p.recorded_events[-1].final is True
    assert p.escalate(plan=PLAN, at=last + timedelta(days=14)) is False
    assert names(p)[-1] == "DunningExhausted" and p.next_dunning_at is None
    with pytest.raises(InvalidTransition, match="not in dunning"):
        p.escalate(plan=PLAN, at=last + timedelta(days=30))


def test_a_manual_attempt_does_not_shift_the_retry_schedule():
    p = payment()
    attempt(p, DECLINED, T0)
    attempt(p, DECLINED, T0 + timedelta(minutes=10), AttemptTrigger.MANUAL)
    assert p.next_retry_at == T0 + timedelta(hours=1) and p.attempts == 2
    attempt(p, OK, T0 + timedelta(minutes=20), AttemptTrigger.PAYMENT_METHOD)
    assert p.status == PaymentStatus.SUCCEEDED and p.next_retry_at is None


def test_zero_is_paid_by_credit_without_the_gateway():
    p = payment("0.00")
    p.pay_with_credit(at=T0)
    assert p.status == PaymentStatus.SUCCEEDED and p.payment_method == "account credit"
    with pytest.raises(InvalidTransition):
        payment("1.00").pay_with_credit(at=T0)


def test_refunds_never_exceed_what_was_paid():
    p = payment("50.00")
    with pytest.raises(InvalidTransition, match="Only a succeeded payment"):
        p.check_refund(Money("1.00", "USD"))
    attempt(p, OK, T0)
    p.refund(
        Money("20.00", "USD"), reason="goodwill", credit_note_number="CN-1", gateway_reference="re_1", raw={}, at=T0
    )
    assert p.refundable == Money("30.00", "USD")
    with pytest.raises(RefundTooLarge, match="At most 30.00"):
        p.check_refund(Money("30.01", "USD"))
    with pytest.raises(InvalidTransition, match="refund in USD"):
        p.check_refund(Money("1.00", "EUR"))
    with pytest.raises(InvalidTransition, match="positive"):
        p.check_refund(Money("0.00", "USD"))
    p.refund(Money("30.00", "USD"), reason="rest", credit_note_number="CN-2", gateway_reference="re_2", raw={}, at=T0)
    refunded = p.recorded_events[-1]
    assert refunded.total_refunded == Money("50.00", "USD")
    with pytest.raises(RefundTooLarge):
        p.check_refund(Money("0.01", "USD"))


def test_cancel_stops_collection_but_not_a_paid_payment():
    p = payment()
    attempt(p, DECLINED, T0)
    p.cancel(at=T0)
    assert p.status == PaymentStatus.CANCELLED and p.next_retry_at is None
    paid = payment()
    attempt(paid, OK, T0)
    with pytest.raises(InvalidTransition):
        paid.cancel(at=T0)


def test_dunning_plan_validates_its_offsets():
    with pytest.raises(ValueError):
        DunningPlan(retry_offsets=(timedelta(hours=2), timedelta(hours=1)), escalation_offsets=(timedelta(days=1),))
    with pytest.raises(ValueError):
        DunningPlan(retry_offsets=(), escalation_offsets=())
