"""Subscription aggregate: every command, allowed and refused (no database)."""

from datetime import timedelta

import pytest

from sharedkernel.errors import InvalidTransition
from subscriptions.models import ResumeInitiator, Subscription
from subscriptions.rules import (
    AlreadySubscribed,
    CurrencyNotOffered,
    DowngradeDuringTrial,
    NoPendingPlanChange,
    PlanChangePolicy,
    PlanUnavailable,
    SamePlan,
    TrialNotAvailable,
)
from tests.conftest import at
from tests.subscriptions.factories import customer, names, plan, subscription

policy = PlanChangePolicy()


# -- start -----------------------------------------------------------------------------


def test_without_trial_it_waits_for_the_first_payment():
    sub = Subscription.start(customer=customer(), plan=plan(), currency="USD", trial=False, at=at("2025-01-31 10:00"))
    assert sub.status == "pending_payment"
    assert (sub.current_period_start, sub.current_period_end) == (at("2025-01-31 10:00"), at("2025-02-28 10:00"))
    assert names(sub) == ["SubscriptionCreated", "PlanSelected"]
    created = sub.recorded_events[0]
    assert created.price.amount == 49 and created.trial is False and created.status == "pending_payment"


def test_with_trial_it_trials_for_the_plans_days():
    sub = Subscription.start(
        customer=customer(), plan=plan(trial_days=14), currency="USD", trial=True, at=at("2025-03-01 09:00")
    )
    assert sub.status == "trialing"
    assert sub.trial_end == at("2025-03-15 09:00")
    assert sub.current_period_end == sub.trial_end
    assert names(sub) == ["SubscriptionCreated", "PlanSelected", "TrialStarted"]


def test_start_refusals():
    archived = plan(code="old")
    archived.archive(at=at("2025-01-02 00:00"))
    with pytest.raises(PlanUnavailable):
        Subscription.start(customer=customer(), plan=archived, currency="USD", trial=False, at=at("2025-02-01 00:00"))
    with pytest.raises(CurrencyNotOffered):
        Subscription.start(customer=customer(), plan=plan(), currency="EUR", trial=False, at=at("2025-02-01 00:00"))
    with pytest.raises(TrialNotAvailable):
        Subscription.start(
            customer=customer(), plan=plan(trial_days=0), currency="USD", trial=True, at=at("2025-02-01 00:00")
        )
    with pytest.raises(TrialNotAvailable):
        Subscription.start(
            customer=customer(),
            plan=plan(),
            currency="USD",
            trial=True,
            at=at("2025-02-01 00:00"),
            trial_used_before=True,
        )
    p = plan()
    with pytest.raises(AlreadySubscribed):
        Subscription.start(
            customer=customer(),
            plan=p,
            currency="USD",
            trial=False,
            at=at("2025-02-01 00:00"),
            live_plan_ids=frozenset({str(p.id)}),
        )


# -- anniversary billing -------------------------------------------------------------------


def test_a_jan_31_anchor_bills_feb_28_then_mar_31():
    sub = subscription(start=at("2025-01-31 10:00"), status="active")
    ends = []
    for _ in range(3):
        sub.renew(at=sub.current_period_end)
        ends.append(sub.current_period_end)
    assert ends == [at("2025-03-31 10:00"), at("2025-04-30 10:00"), at("2025-05-31 10:00")]
    assert sub.recorded_events[0].previous_period.end == at("2025-02-28 10:00")


def test_a_jan_31_anchor_in_a_leap_year_bills_feb_29():
    sub = subscription(start=at("2024-01-31 00:00"), status="active")
    assert sub.current_period_end == at("2024-02-29 00:00")
    sub.renew(at=at("2024-02-29 00:00"))
    assert sub.current_period_end == at("2024-03-31 00:00")


def test_renewal_refusals_and_event():
    sub = subscription(status="active")
    with pytest.raises(InvalidTransition, match="not ended"):
        sub.renew(at=sub.current_period_end - timedelta(seconds=1))
    end = sub.current_period_end
    sub.renew(at=end + timedelta(hours=3))
    renewed = sub.recorded_events[-1]
    assert renewed.event_type == "subscriptions.SubscriptionRenewed"
    assert renewed.period.start == end and renewed.previous_period.end == end
    pending = subscription()
    with pytest.raises(InvalidTransition, match="Only an active"):
        pending.renew(at=pending.current_period_end)


def test_scheduled_cancellation_ends_the_subscription_at_period_end_instead_of_renewing():
    sub = subscription(status="active")
    sub.cancel(at=at("2025-02-10 00:00"), reason="too expensive", at_period_end=True)
    assert sub.status == "active" and sub.cancel_at_period_end
    assert names(sub)[-1] == "SubscriptionCancellationScheduled"
    sub.renew(at=sub.current_period_end)
    assert sub.status == "cancelled"
    cancelled = sub.recorded_events[-1]
    assert cancelled.at_period_end and cancelled.cancelled_at == at("2025-02-28 10:00")
    assert cancelled.reason == "too expensive"


# -- trial ---------------------------------------------------------------------------------


def test_trial_converts_when_a_payment_method_is_on_file():
    sub = subscription(trial=True, start=at("2025-03-01 09:00"))
    with pytest.raises(InvalidTransition, match="not ended"):
        sub.expire_trial(at=at("2025-03-15 08:59"), has_payment_method=True)
    sub.expire_trial(at=at("2025-03-15 09:05"), has_payment_method=True)
    assert sub.status == "active"
    assert (sub.current_period_start, sub.current_period_end) == (at("2025-03-15 09:00"), at("2025-04-15 09:00"))
    assert names(sub) == ["TrialExpired", "SubscriptionActivated"]
    assert sub.recorded_events[1].reason == "trial_converted"


def test_trial_suspends_without_a_payment_method_and_a_new_card_restarts_billing():
    sub = subscription(trial=True, start=at("2025-03-01 09:00"))
    sub.expire_trial(at=at("2025-03-15 09:00"), has_payment_method=False)
    assert sub.status == "suspended" and sub.suspension_reason == "no_payment_method"
    assert names(sub) == ["TrialExpired", "SubscriptionSuspended"]
    with pytest.raises(InvalidTransition, match="adding a card"):
        sub.resume(at=at("2025-03-16 00:00"), initiator=ResumeInitiator.CUSTOMER)
    sub.resume(at=at("2025-03-20 12:00"), initiator=ResumeInitiator.SYSTEM)
    resumed = sub.recorded_events[-1]
    assert sub.status == "active" and resumed.period_restarted
    assert (sub.current_period_start, sub.current_period_end) == (at("2025-03-20 12:00"), at("2025-04-20 12:00"))


def test_trial_with_a_scheduled_cancellation_ends_at_trial_end():
    sub = subscription(trial=True, start=at("2025-03-01 09:00"))
    sub.cancel(at=at("2025-03-02 00:00"), at_period_end=True)
    sub.expire_trial(at=at("2025-03-15 09:00"), has_payment_method=True)
    assert sub.status == "cancelled"
    assert names(sub)[-2:] == ["TrialExpired", "SubscriptionCancelled"]


def test_trial_expiry_refused_when_not_trialing():
    sub = subscription(status="active")
    with pytest.raises(InvalidTransition):
        sub.expire_trial(at=at("2030-01-01 00:00"), has_payment_method=True)


def test_trial_reminder_once_and_not_too_early():
    sub = subscription(trial=True, start=at("2025-03-01 09:00"))
    with pytest.raises(InvalidTransition, match="too early"):
        sub.remind_trial_ending(at=at("2025-03-10 09:00"), days_before=3, has_payment_method=False)
    sub.remind_trial_ending(at=at("2025-03-12 10:00"), days_before=3, has_payment_method=False)
    assert sub.recorded_events[-1].days_left == 3
    with pytest.raises(InvalidTransition, match="already"):
        sub.remind_trial_ending(at=at("2025-03-13 10:00"), days_before=3, has_payment_method=False)


# -- activate / suspend / resume / cancel ---------------------------------------------------------


def test_activate_only_from_pending_payment():
    sub = subscription()
    sub.activate(at=at("2025-02-01 00:00"))
    assert sub.status == "active" and names(sub) == ["SubscriptionActivated"]
    assert sub.recorded_events[0].reason == "first_payment"
    with pytest.raises(InvalidTransition):
        sub.activate(at=at("2025-02-02 00:00"))


def test_suspend_only_an_active_subscription():
    sub = subscription(status="active")
    sub.suspend(at=at("2025-02-05 00:00"), reason="non_payment")
    assert sub.status == "suspended"
    with pytest.raises(InvalidTransition):
        sub.suspend(at=at("2025-02-06 00:00"), reason="staff")
    with pytest.raises(InvalidTransition):
        subscription().suspend(at=at("2025-02-06 00:00"), reason="staff")


def test_payment_resumes_a_non_payment_suspension_within_its_period():
    sub = subscription(status="active")
    sub.suspend(at=at("2025-02-05 00:00"), reason="non_payment")
    with pytest.raises(InvalidTransition, match="suspended for payment"):
        sub.resume(at=at("2025-02-06 00:00"), initiator=ResumeInitiator.CUSTOMER)
    sub.resume(at=at("2025-02-07 00:00"), initiator=ResumeInitiator.SYSTEM)
    resumed = sub.recorded_events[-1]
    assert sub.status == "active" and not resumed.period_restarted
    assert sub.current_period_end == at("2025-02-28 10:00")


def test_resume_after_the_period_ran_out_starts_a_new_period():
    sub = subscription(status="active")
    sub.suspend(at=at("2025-02-05 00:00"), reason="staff")
    sub.resume(at=at("2025-04-01 00:00"), initiator=ResumeInitiator.CUSTOMER)
    assert sub.recorded_events[-1].period_restarted
    assert sub.current_period_start == at("2025-04-01 00:00")


def test_resume_withdraws_a_scheduled_cancellation_but_not_an_active_subscription():
    sub = subscription(status="active")
    with pytest.raises(InvalidTransition, match="Only a suspended"):
        sub.resume(at=at("2025-02-05 00:00"))
    sub.cancel(at=at("2025-02-05 00:00"), at_period_end=True)
    sub.resume(at=at("2025-02-06 00:00"))
    assert not sub.cancel_at_period_end
    assert sub.recorded_events[-1].resumed_from == "scheduled_cancellation"


def test_cancel_now_and_never_twice():
    sub = subscription(status="active")
    sub.cancel(at=at("2025-02-10 00:00"), reason="moving on")
    assert sub.status == "cancelled" and sub.cancelled_at == at("2025-02-10 00:00")
    cancelled = sub.recorded_events[-1]
    assert not cancelled.at_period_end and cancelled.previous_status == "active"
    with pytest.raises(InvalidTransition, match="already cancelled"):
        sub.cancel(at=at("2025-02-11 00:00"))
    for command in (
        lambda: sub.resume(at=at("2025-02-12 00:00")),
        lambda: sub.suspend(at=at("2025-02-12 00:00"), reason="staff"),
        lambda: sub.change_plan(target=plan(code="other"), at=at("2025-02-12 00:00"), policy=policy),
    ):
        with pytest.raises(InvalidTransition):
            command()


def test_scheduling_a_cancellation_twice_is_refused():
    sub = subscription(status="active")
    sub.cancel(at=at("2025-02-10 00:00"), at_period_end=True)
    with pytest.raises(InvalidTransition, match="already scheduled"):
        sub.cancel(at=at("2025-02-11 00:00"), at_period_end=True)


def test_unpaid_subscription_cancels_at_once_even_when_asked_for_period_end():
    sub = subscription()
    sub.cancel(at=at("2025-02-01 00:00"), at_period_end=True)
    assert sub.status == "cancelled"


# -- plan changes ------------------------------------------------------------------------------


def test_upgrade_mid_period_keeps_the_period_and_reports_prices():
    basic = plan(code="basic-m", tier="basic", prices=("19.00 USD",))
    pro = plan(code="pro-m", tier="professional", prices=("49.00 USD",))
    sub = subscription(on=basic, status="active")
    assert sub.change_plan(target=pro, at=at("2025-02-14 10:00"), policy=policy) is True
    changed = sub.recorded_events[-1]
    assert changed.direction == "upgrade" and not changed.in_trial
    assert (changed.old_price.amount, changed.new_price.amount) == (19, 49)
    assert changed.period == changed.new_period
    assert sub.price.amount == 49 and sub.plan is pro


def test_monthly_to_annual_starts_a_new_annual_period_at_the_change():
    monthly = plan(code="pro-m", prices=("49.00 USD",))
    annual = plan(code="pro-y", interval="year", prices=("490.00 USD",))
    sub = subscription(on=monthly, status="active")
    sub.change_plan(target=annual, at=at("2025-02-14 10:00"), policy=policy)
    changed = sub.recorded_events[-1]
    assert changed.period.end == at("2025-02-28 10:00")
    assert (changed.new_period.start, changed.new_period.end) == (at("2025-02-14 10:00"), at("2026-02-14 10:00"))


def test_plan_change_refusals():
    pro = plan(code="pro-m")
    basic = plan(code="basic-m", tier="basic", prices=("19.00 USD",))
    trialing = subscription(trial=True, on=pro)
    with pytest.raises(SamePlan):
        trialing.change_plan(target=pro, at=at("2025-02-01 00:00"), policy=policy)
    with pytest.raises(DowngradeDuringTrial):
        trialing.change_plan(target=basic, at=at("2025-02-01 00:00"), policy=policy)
    euro_only = plan(code="eu", tier="enterprise", prices=("99.00 EUR",))
    with pytest.raises(CurrencyNotOffered):
        subscription(on=pro, status="active").change_plan(target=euro_only, at=at("2025-02-01 00:00"), policy=policy)
    with pytest.raises(InvalidTransition, match="active or trialing"):
        subscription(on=pro).change_plan(target=basic, at=at("2025-02-01 00:00"), policy=policy)


def test_upgrade_during_trial_is_allowed_and_not_charged():
    basic = plan(code="basic-m", tier="basic", prices=("19.00 USD",))
    sub = subscription(trial=True, on=basic)
    sub.change_plan(target=plan(code="pro-m"), at=at("2025-02-03 00:00"), policy=policy)
    assert sub.recorded_events[-1].in_trial is True
    assert sub.status == "trialing"


def test_enterprise_needs_staff_approval():
    pro = plan(code="pro-m")
    enterprise = plan(code="ent-m", tier="enterprise", prices=("499.00 USD",))
    sub = subscription(on=pro, status="active")
    assert sub.change_plan(target=enterprise, at=at("2025-02-03 00:00"), policy=policy) is False
    assert sub.plan is pro and sub.pending_plan is enterprise
    assert names(sub)[-1] == "PlanChangeRequested"
    sub.approve_plan_change(at=at("2025-02-04 00:00"), policy=policy)
    assert sub.plan is enterprise and sub.pending_plan is None
    assert names(sub)[-1] == "PlanChanged"
    with pytest.raises(NoPendingPlanChange):
        sub.approve_plan_change(at=at("2025-02-05 00:00"), policy=policy)
    with pytest.raises(NoPendingPlanChange):
        sub.decline_plan_change(at=at("2025-02-05 00:00"))


def test_staff_may_move_a_subscription_to_enterprise_directly():
    sub = subscription(on=plan(code="pro-m"), status="active")
    enterprise = plan(code="ent-m", tier="enterprise", prices=("499.00 USD",))
    assert sub.change_plan(target=enterprise, at=at("2025-02-03 00:00"), policy=policy, approved_by_staff=True)


def test_declined_request_leaves_the_plan_alone():
    sub = subscription(on=plan(code="pro-m"), status="active")
    sub.change_plan(
        target=plan(code="ent-m", tier="enterprise", prices=("499.00 USD",)), at=at("2025-02-03 00:00"), policy=policy
    )
    sub.decline_plan_change(at=at("2025-02-04 00:00"))
    assert sub.pending_plan is None and sub.plan.code == "pro-m"
    assert names(sub)[-1] == "PlanChangeDeclined"


def test_archived_target_plan_is_refused_but_an_archived_current_plan_keeps_working():
    current = plan(code="legacy")
    sub = subscription(on=current, status="active")
    current.archive(at=at("2025-02-01 00:00"))
    sub.renew(at=sub.current_period_end)  # existing subscriptions stay valid
    assert sub.status == "active"
    retired = plan(code="retired", tier="enterprise", prices=("99.00 USD",))
    retired.archive(at=at("2025-02-01 00:00"))
    with pytest.raises(PlanUnavailable):
        sub.change_plan(target=retired, at=at("2025-03-05 00:00"), policy=policy)
