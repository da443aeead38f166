"""Commands, policies fed with Billing's documented payloads, and the beat jobs — against the database."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from sharedkernel.clock import FixedClock
from sharedkernel.errors import InvalidTransition
from sharedkernel.models import CustomerLogin, EventDelivery, StoredEvent
from sharedkernel.scheduling import run_job
from sharedkernel.values import Money
from subscriptions import commands
from subscriptions.models import Subscription
from subscriptions.queries import plan_catalog, subscription_summaries
from subscriptions.rules import AlreadySubscribed, TrialNotAvailable
from tests.conftest import at
from tests.helpers import event_types, payment_succeeded_payload, publish

pytestmark = pytest.mark.django_db

T0 = at("2025-01-31 10:00")


def make_plan(code="pro-m", tier="professional", interval="month", price="49.00", trial_days=14, currency="USD"):
    return commands.define_plan(
        code=code,
        name=code.upper(),
        tier=tier,
        interval=interval,
        trial_days=trial_days,
        prices=[Money(price, currency)],
        features=["Priority support"],
        clock=FixedClock(T0),
    )


def make_customer(email="ada@example.com"):
    customer, _ = commands.register_customer(
        name="Ada", email=email, currency="USD", country="GB", clock=FixedClock(T0)
    )
    return customer


def test_register_customer_publishes_the_payload_other_contexts_need():
    customer, api_key = commands.register_customer(
        name="Ada", email="Ada@Example.com", currency="jpy", country="jp", with_api_key=True, clock=FixedClock(T0)
    )
    event = StoredEvent.objects.get(aggregate_id=str(customer.pk))
    assert event.event_type == "subscriptions.CustomerRegistered"
    assert event.payload["email"] == "Ada@example.com" and event.payload["currency"] == "JPY"
    assert CustomerLogin.objects.get(customer_id=customer.pk).user.auth_token.key == api_key


def test_define_plan_writes_prices_and_the_catalog_shows_it():
    make_plan(code="basic-m", tier="basic", price="19.00")
    make_plan(code="pro-m", price="49.00")
    catalog = plan_catalog("USD")
    assert [(e.code, e.price) for e in catalog] == [("basic-m", Money("19", "USD")), ("pro-m", Money("49", "USD"))]
    assert plan_catalog("EUR") == []


def test_subscribe_once_per_plan_and_one_trial_per_customer():
    plan = make_plan()
    other = make_plan(code="team-m", price="99.00")
    customer = make_customer()
    sub = commands.subscribe(customer_id=customer.pk, plan_id=plan.pk, trial=True, clock=FixedClock(T0))
    assert sub.status == "trialing"
    with pytest.raises(AlreadySubscribed):
        commands.subscribe(customer_id=customer.pk, plan_id=plan.pk, clock=FixedClock(T0))
    with pytest.raises(TrialNotAvailable):
        commands.subscribe(customer_id=customer.pk, plan_id=other.pk, trial=True, clock=FixedClock(T0))
    assert event_types(sub.pk) == [
        "subscriptions.SubscriptionCreated",
        "subscriptions.PlanSelected",
        "subscriptions.TrialStarted",
    ]


def test_a_refused_command_leaves_no_partial_state():
    plan = make_plan()
    customer = make_customer()
    sub = commands.subscribe(customer_id=customer.pk, plan_id=plan.pk, clock=FixedClock(T0))
    before = (StoredEvent.objects.count(), EventDelivery.objects.count(), Subscription.objects.get(pk=sub.pk).version)
    with pytest.raises(InvalidTransition):
        commands.suspend_subscription(subscription_id=sub.pk)  # pending payment cannot be suspended
    after = (StoredEvent.objects.count(), EventDelivery.objects.count(), Subscription.objects.get(pk=sub.pk).version)
    assert before == after


# -- policies, fed with billing payloads of the documented shape ----------------------------


def paid(sub, occurred_on=None) -> None:
    """Billing's PaymentSucceeded for an invoice of ``sub``."""
    publish("billing.PaymentSucceeded", payment_succeeded_payload(sub.customer_id, sub.pk), occurred_on=occurred_on)


def test_payment_succeeded_activates_a_subscription_pending_payment(drain):
    sub = commands.subscribe(customer_id=make_customer().pk, plan_id=make_plan().pk, clock=FixedClock(T0))
    paid(sub, occurred_on=T0 + timedelta(minutes=1))
    drain()
    sub.refresh_from_db()
    assert sub.status == "active" and sub.activated_at == T0 + timedelta(minutes=1)
    # a payment for an already active subscription changes nothing
    paid(sub)
    drain()
    assert event_types(sub.pk).count("subscriptions.SubscriptionActivated") == 1


def test_dunning_exhausted_suspends_and_a_later_payment_resumes(drain):
    sub = commands.subscribe(customer_id=make_customer().pk, plan_id=make_plan().pk, clock=FixedClock(T0))
    commands.activate_subscription(subscription_id=sub.pk, clock=FixedClock(T0))
    publish(
        "billing.DunningExhausted",
        {"invoice_id": "i2", "customer_id": str(sub.customer_id), "subscription_id": str(sub.pk)},
        occurred_on=T0 + timedelta(days=10),
    )
    drain()
    sub.refresh_from_db()
    assert (sub.status, sub.suspension_reason) == ("suspended", "non_payment")
    paid(sub, occurred_on=T0 + timedelta(days=12))
    drain()
    sub.refresh_from_db()
    assert sub.status == "active"


def test_dunning_exhausted_on_a_never_paid_subscription_cancels_it(drain):
    sub = commands.subscribe(customer_id=make_customer().pk, plan_id=make_plan().pk, clock=FixedClock(T0))
    publish("billing.DunningExhausted", {"customer_id": str(sub.customer_id), "subscription_id": str(sub.pk)})
    drain()
    sub.refresh_from_db()
    assert sub.status == "cancelled"


def test_a_payment_method_resumes_trials_that_ended_without_one(drain):
    customer = make_customer()
    sub = commands.subscribe(customer_id=customer.pk, plan_id=make_plan().pk, trial=True, clock=FixedClock(T0))
    commands.expire_trial(subscription_id=sub.pk, clock=FixedClock(T0 + timedelta(days=15)))
    sub.refresh_from_db()
    assert sub.status == "suspended"
    publish(
        "billing.PaymentMethodUpdated",
        {"customer_id": str(customer.pk), "has_payment_method": True, "brand": "visa", "last4": "4242"},
        occurred_on=T0 + timedelta(days=20),
    )
    drain()
    sub.refresh_from_db()
    customer.refresh_from_db()
    assert customer.has_payment_method and sub.status == "active"
    assert sub.current_period_start == T0 + timedelta(days=20)


def test_events_of_unknown_subscriptions_are_ignored(drain):
    stranger = uuid.uuid4()
    publish("billing.PaymentSucceeded", payment_succeeded_payload(stranger, "00000000-0000-0000-0000-000000000000"))
    publish("billing.PaymentSucceeded", payment_succeeded_payload(stranger, None))
    drain()
    assert not EventDelivery.objects.filter(handler__startswith="subscriptions.").exclude(status="done").exists()


# -- beat jobs ------------------------------------------------------------------------------


def test_trial_jobs_remind_then_expire_each_once(drain):
    customer = make_customer()
    sub = commands.subscribe(customer_id=customer.pk, plan_id=make_plan().pk, trial=True, clock=FixedClock(T0))
    trial_end = T0 + timedelta(days=14)
    assert run_job("subscriptions.remind_trials_ending", now=trial_end - timedelta(days=4)) == 0
    assert run_job("subscriptions.remind_trials_ending", now=trial_end - timedelta(days=2)) == 1
    assert run_job("subscriptions.remind_trials_ending", now=trial_end - timedelta(days=1)) == 0
    assert run_job("subscriptions.expire_trials", now=trial_end - timedelta(seconds=1)) == 0
    assert run_job("subscriptions.expire_trials", now=trial_end) == 1
    assert run_job("subscriptions.expire_trials", now=trial_end) == 0
    types = event_types(sub.pk)
    assert types.count("subscriptions.TrialEndingSoon") == 1 and types.count("subscriptions.TrialExpired") == 1


def test_renewal_job_renews_once_even_when_run_twice_and_ends_scheduled_cancellations():
    plan = make_plan()
    renewing = commands.subscribe(customer_id=make_customer("a@example.com").pk, plan_id=plan.pk, clock=FixedClock(T0))
    leaving = commands.subscribe(customer_id=make_customer("b@example.com").pk, plan_id=plan.pk, clock=FixedClock(T0))
    for sub in (renewing, leaving):
        commands.activate_subscription(subscription_id=sub.pk, clock=FixedClock(T0))
    commands.cancel_subscription(subscription_id=leaving.pk, at_period_end=True, clock=FixedClock(T0))
    period_end = at("2025-02-28 10:00")
    assert run_job("subscriptions.renew_subscriptions", now=period_end) == 2
    assert run_job("subscriptions.renew_subscriptions", now=period_end) == 0
    assert event_types(renewing.pk).count("subscriptions.SubscriptionRenewed") == 1
    renewing.refresh_from_db()
    leaving.refresh_from_db()
    assert renewing.current_period_end == at("2025-03-31 10:00") and renewing.version == 3
    assert leaving.status == "cancelled"
    renewals = StoredEvent.objects.filter(event_type="subscriptions.SubscriptionRenewed")
    assert (
        renewals.get().correlation_id != StoredEvent.objects.filter(aggregate_id=str(leaving.pk)).last().correlation_id
    )


def test_jobs_of_real_time_do_not_touch_customers_on_a_test_clock():
    from sharedkernel.models import TestClock

    clock = TestClock.objects.create(name="qa", frozen_time=T0)
    customer, _ = commands.register_customer(
        name="Q", email="q@example.com", currency="USD", country="US", test_clock_id=str(clock.pk)
    )
    sub = commands.subscribe(customer_id=customer.pk, plan_id=make_plan().pk, trial=True)
    assert sub.trial_end == T0 + timedelta(days=14)  # it lives on the clock's time
    assert run_job("subscriptions.expire_trials", now=at("2030-01-01 00:00")) == 0
    assert run_job("subscriptions.expire_trials", now=at("2030-01-01 00:00"), test_clock_id=str(clock.pk)) == 1


def test_dashboard_summary_shows_trial_days_left_and_next_billing_date():
    customer = make_customer()
    commands.subscribe(customer_id=customer.pk, plan_id=make_plan().pk, trial=True)
    [summary] = subscription_summaries(customer)
    assert summary.trial_days_left == 14 and summary.next_billing_date == summary.trial_end
    assert summary.can_cancel and summary.can_change_plan and not summary.can_resume
