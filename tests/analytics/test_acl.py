"""Analytics' ACL: upstream payloads become Analytics' own facts and words (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from analytics import acl
from analytics.vocabulary import Interval, RevenueKind, Status
from sharedkernel.events import DomainEvent
from sharedkernel.values import Money

PLAN = {"id": "p1", "name": "Team", "tier": "professional", "interval": "year", "version": 2}


def event(event_type: str, **payload) -> DomainEvent:
    return DomainEvent(
        event_id="00000000-0000-0000-0000-000000000001",
        event_type=event_type,
        event_version=1,
        occurred_on=datetime(2025, 3, 1, tzinfo=UTC),
        aggregate_type="Subscription",
        aggregate_id="s1",
        aggregate_version=1,
        payload=payload,
        correlation_id="00000000-0000-0000-0000-000000000002",
    )


def test_a_plan_change_states_its_status_interval_and_what_it_left():
    # given a downgrade of a trialing subscription to an annual plan
    fact = acl.subscription_fact(
        event(
            "subscriptions.PlanChanged",
            subscription_id="s1",
            customer_id="c1",
            plan=PLAN,
            status="trialing",
            direction="downgrade",
            new_price={"amount": "100.00", "currency": "USD"},
            old_price={"amount": "12.00", "currency": "USD"},
            old_plan={**PLAN, "interval": "month"},
        )
    )
    # then Analytics reads its own words
    assert fact.status is Status.TRIALING and fact.plan.interval is Interval.YEAR and fact.plan.version == 2
    assert fact.price == Money("100.00", "USD") and fact.old_price == Money("12.00", "USD")
    assert fact.old_interval is Interval.MONTH and not fact.upgrade and not fact.created


def test_billing_facts_name_their_subscription_or_none():
    coupon = acl.subscription_fact(
        event("billing.CouponRedeemed", subscription_id="s1", percent_off="25", duration="once")
    )
    assert coupon == acl.DiscountApplied("s1", Decimal("25"), None, 1)
    assert acl.subscription_fact(event("billing.PaymentFailed")).subscription_id is None
    assert acl.subscription_fact(event("billing.DunningEscalated", subscription_id="s1")).level is None


def test_payments_and_refunds_are_money_moved_of_their_kind():
    paid = acl.payment_received({"amount": {"amount": "5.00", "currency": "EUR"}, "paid_at": "2025-03-02T10:00:00"})
    refund = acl.refund_issued(
        {"amount": {"amount": "1.00", "currency": "EUR"}, "refunded_at": "2025-03-03T10:00:00", "plan_name": "Team"}
    )
    assert paid.kind is RevenueKind.PAYMENT and paid.plan_name == "" and paid.on.day == 2
    assert refund.kind is RevenueKind.REFUND and refund.amount == Money("1.00", "EUR")
