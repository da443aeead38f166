"""Application services of the Subscriptions context: one function per command.

Each loads the aggregate, calls its method, saves it (version-checked) and
publishes its events, in one transaction (``@command``). Time comes from the
customer's clock unless the caller passes one. The invariants themselves live
in the aggregate methods (models.py) and PlanChangePolicy (rules.py).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet
from rest_framework.authtoken.models import Token

from sharedkernel.aggregates import bulk_save_locked
from sharedkernel.bus import LARGE_BATCH
from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import Cause, current_cause, new_correlation_id
from sharedkernel.errors import ConcurrentUpdate, DomainError, InvalidInput, NotFound
from sharedkernel.eventstore import append_batch, save_and_publish
from sharedkernel.models import CustomerLogin, TestClock
from sharedkernel.values import EmailAddress, Money, UnitRate, UnknownCurrency
from subscriptions import usage
from subscriptions.models import (
    LIVE_STATUSES,
    Customer,
    Plan,
    PlanOverageRate,
    PlanPrice,
    ResumeInitiator,
    Subscription,
    SubscriptionStatus,
    SuspensionReason,
)
from subscriptions.rules import PlanChangePolicy

plan_change_policy = PlanChangePolicy()


# -- customers ---------------------------------------------------------------------


class EmailTaken(DomainError):
    code = "email_taken"


@command(aggregate="Customer", records=("subscriptions.CustomerRegistered",))
def register_customer(
    *,
    name: str,
    email: str,
    currency: str,
    country: str,
    region: str = "",
    tax_exempt: bool = False,
    user=None,
    with_api_key: bool = False,
    test_clock_id: str | None = None,
    clock: Clock | None = None,
) -> tuple[Customer, str | None]:
    """RegisterCustomer → CustomerRegistered. With ``with_api_key`` a login is made
    for the customer and its API key returned (shown once).

    One customer per e-mail address, compared case-insensitively (sign-up promises it):
    a second registration is refused with ``email_taken`` before anything is written.
    """
    try:
        address = EmailAddress(email).value
    except ValueError as exc:
        raise InvalidInput(str(exc), details={"email": "invalid"}) from None
    if connection.vendor == "postgresql":  # two registrations of one address: the second waits, then sees the first
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(lower(%s)))", [address])
    if Customer.objects.filter(email__iexact=address).exists():
        raise EmailTaken(
            "A customer with this e-mail address is already registered.", details={"email": "already registered"}
        )
    test_clock = None
    if test_clock_id:
        test_clock = TestClock.objects.filter(pk=test_clock_id).first()
        if test_clock is None:
            raise InvalidInput("No such test clock.", details={"test_clock": "does not exist"})
    clock = clock or clock_for(test_clock_id)
    api_key = None
    if with_api_key and user is None:
        user = get_user_model().objects.create_user(
            username=f"customer-{secrets.token_hex(8)}", email=address, password=None
        )
        api_key = Token.objects.create(user=user).key
    try:
        customer = Customer.register(
            name=name,
            email=email,
            currency=currency,
            country=country,
            region=region,
            tax_exempt=tax_exempt,
            user=user,
            test_clock=test_clock,
            at=clock.now(),
        )
    except UnknownCurrency as exc:
        raise InvalidInput(str(exc), details={"currency": "not a billable ISO 4217 code"}) from None
    save_and_publish(customer)
    if user is not None:
        CustomerLogin.objects.create(user=user, customer_id=customer.id)
    return customer, api_key


@command(aggregate="Customer", records=())
def record_payment_method(*, customer_id: str, present: bool) -> Customer | None:
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        return None
    customer.note_payment_method(present=present)
    customer.save(update_fields=["has_payment_method"])
    return customer


@command(aggregate="Subscription", records=())
def record_dunning(*, subscription_ids: list[str], since: datetime | None) -> int:
    """Billing's dunning of these subscriptions began (``since``) or a payment ended it (None).
    Only rows whose note changes are written, locked, their versions advanced (a writer holding an
    older copy gets a conflict instead of writing the note back); returns how many."""
    if not subscription_ids:
        return 0
    subs = list(
        Subscription.objects.select_for_update(of=("self",)).filter(
            pk__in=subscription_ids, dunning_since__isnull=since is not None
        )
    )
    for sub in subs:
        sub.note_dunning(since=since)
    bulk_save_locked(subs, ["dunning_since"])
    return len(subs)


# -- plans -------------------------------------------------------------------------


def _save_plan(plan: Plan) -> None:
    version = plan.staged_version()  # reads the staged terms, so before they are taken
    staged = plan.staged_children()
    save_and_publish(plan)
    if version is not None:
        version.save()
    if staged is None:
        return
    prices, rates = staged
    PlanPrice.objects.filter(plan=plan).delete()
    PlanOverageRate.objects.filter(plan=plan).delete()
    PlanPrice.objects.bulk_create(PlanPrice(plan=plan, currency=p.currency, amount_minor=p.minor_units) for p in prices)
    PlanOverageRate.objects.bulk_create(
        PlanOverageRate(plan=plan, metric=metric, currency=r.currency, amount=r.amount)
        for metric, metric_rates in rates.items()
        for r in metric_rates
    )


@command(aggregate="Plan", records=("subscriptions.PlanCreated",))
def define_plan(
    *,
    code: str,
    name: str,
    tier: str,
    interval: str,
    trial_days: int,
    prices: list[Money],
    features: list[str] | None = None,
    included_usage: dict[str, int] | None = None,
    overage_rates: dict[str, list[UnitRate | Money]] | None = None,
    clock: Clock | None = None,
) -> Plan:
    if Plan.objects.filter(code=code).exists():
        raise InvalidInput("A plan with this code exists already.", details={"code": "already used"})
    plan = Plan.define(
        code=code,
        name=name,
        tier=tier,
        interval=interval,
        trial_days=trial_days,
        prices=prices,
        features=features,
        included_usage=included_usage,
        overage_rates=overage_rates,
        at=(clock or clock_for(None)).now(),
    )
    _save_plan(plan)
    return plan


@command(aggregate="Plan", records=("subscriptions.PlanUpdated",))
def revise_plan(
    *,
    plan_id: str,
    name: str,
    trial_days: int,
    prices: list[Money],
    features: list[str],
    included_usage: dict[str, int],
    overage_rates: dict[str, list[UnitRate | Money]],
    clock: Clock | None = None,
) -> Plan:
    plan = _plan(plan_id)
    plan.revise(
        name=name,
        trial_days=trial_days,
        prices=prices,
        features=features,
        included_usage=included_usage,
        overage_rates=overage_rates,
        at=(clock or clock_for(None)).now(),
    )
    _save_plan(plan)
    return plan


@command(aggregate="Plan", records=("subscriptions.PlanArchived",))
def archive_plan(*, plan_id: str, clock: Clock | None = None) -> Plan:
    plan = _plan(plan_id)
    plan.archive(at=(clock or clock_for(None)).now())
    _save_plan(plan)
    return plan


@command(aggregate="Plan", records=("subscriptions.PlanRestored",))
def restore_plan(*, plan_id: str, clock: Clock | None = None) -> Plan:
    plan = _plan(plan_id)
    plan.restore(at=(clock or clock_for(None)).now())
    _save_plan(plan)
    return plan


def _plan(plan_id) -> Plan:
    plan = Plan.objects.prefetch_related("price_rows", "overage_rows").filter(pk=plan_id).first()
    if plan is None:
        raise NotFound("No such plan.")
    return plan


# -- subscriptions -----------------------------------------------------------------


def _subscription(subscription_id, expected_version: int | None = None) -> Subscription:
    sub = (
        Subscription.objects.select_related("plan", "customer", "pending_plan")
        .prefetch_related("plan__price_rows", "pending_plan__price_rows")
        .filter(pk=subscription_id)
        .first()
    )
    if sub is None:
        raise NotFound("No such subscription.")
    if expected_version is not None and expected_version != sub.version:
        raise ConcurrentUpdate("Subscription", sub.pk, expected_version)
    return sub


def _clock(sub: Subscription, clock: Clock | None) -> Clock:
    return clock or clock_for(sub.test_clock_id)


@command(
    aggregate="Subscription",
    records=("subscriptions.SubscriptionCreated", "subscriptions.PlanSelected", "subscriptions.TrialStarted"),
)
def subscribe(
    *, customer_id: str, plan_id: str, currency: str | None = None, trial: bool = False, clock: Clock | None = None
) -> Subscription:
    """CreateSubscription + SelectPlan (+ StartTrial)."""
    # Locking the customer serialises two subscribe calls for the same person,
    # so "one live subscription per plan" and "one trial" cannot be raced.
    customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
    if customer is None:
        raise NotFound("No such customer.")
    plan = _plan(plan_id)
    existing = customer.subscriptions.all()
    sub = Subscription.start(
        customer=customer,
        plan=plan,
        currency=(currency or customer.currency).upper(),
        trial=trial,
        at=(clock or clock_for(customer.test_clock_id)).now(),
        trial_used_before=existing.filter(trial_start__isnull=False).exists(),
        live_plan_ids=frozenset(
            str(p) for p in existing.filter(status__in=LIVE_STATUSES).values_list("plan_id", flat=True)
        ),
    )
    save_and_publish(sub)
    return sub


@command(
    aggregate="Subscription",
    records=("subscriptions.PlanChangeRequested", "subscriptions.PriceChangeCancelled", "subscriptions.PlanChanged"),
)
def change_plan(
    *,
    subscription_id: str,
    plan_id: str,
    by_staff: bool = False,
    expected_version: int | None = None,
    clock: Clock | None = None,
) -> tuple[Subscription, bool]:
    """ChangePlan. Returns (subscription, changed); ``changed`` is False when an
    enterprise change waits for staff approval."""
    sub = _subscription(subscription_id, expected_version)
    target = _plan(plan_id)
    changed = sub.change_plan(
        target=target, at=_clock(sub, clock).now(), policy=plan_change_policy, approved_by_staff=by_staff
    )
    save_and_publish(sub)
    return sub, changed


@command(aggregate="Subscription", records=("subscriptions.PriceChangeCancelled", "subscriptions.PlanChanged"))
def approve_plan_change(*, subscription_id: str, clock: Clock | None = None) -> Subscription:
    sub = _subscription(subscription_id)
    sub.approve_plan_change(at=_clock(sub, clock).now(), policy=plan_change_policy)
    save_and_publish(sub)
    return sub


@command(aggregate="Subscription", records=("subscriptions.PlanChangeDeclined",))
def decline_plan_change(*, subscription_id: str, clock: Clock | None = None) -> Subscription:
    sub = _subscription(subscription_id)
    sub.decline_plan_change(at=_clock(sub, clock).now())
    save_and_publish(sub)
    return sub


@command(
    aggregate="Subscription",
    records=(
        "subscriptions.PriceChangeCancelled",
        "subscriptions.SubscriptionCancellationScheduled",
        "subscriptions.SubscriptionCancelled",
    ),
)
def cancel_subscription(
    *,
    subscription_id: str,
    reason: str = "",
    at_period_end: bool = False,
    expected_version: int | None = None,
    clock: Clock | None = None,
) -> Subscription:
    sub = _subscription(subscription_id, expected_version)
    period_start, now = sub.current_period_start, _clock(sub, clock).now()
    sub.cancel(at=now, reason=reason, at_period_end=at_period_end)
    save_and_publish(sub)
    if sub.status == SubscriptionStatus.CANCELLED and period_start < now:
        usage.open_usage_periods([sub], {sub.pk: (period_start, now)})  # the partial period's usage is billed
    return sub


@command(aggregate="Subscription", records=("subscriptions.SubscriptionResumed",))
def resume_subscription(
    *,
    subscription_id: str,
    initiator: str = ResumeInitiator.CUSTOMER,
    expected_version: int | None = None,
    clock: Clock | None = None,
) -> Subscription:
    sub = _subscription(subscription_id, expected_version)
    sub.resume(at=_clock(sub, clock).now(), initiator=initiator)
    save_and_publish(sub)
    return sub


@command(aggregate="Subscription", records=("subscriptions.SubscriptionSuspended",))
def suspend_subscription(
    *,
    subscription_id: str,
    reason: str = SuspensionReason.STAFF,
    expected_version: int | None = None,
    clock: Clock | None = None,
) -> Subscription:
    sub = _subscription(subscription_id, expected_version)
    sub.suspend(at=_clock(sub, clock).now(), reason=reason)
    save_and_publish(sub)
    return sub


@command(aggregate="Subscription", records=("subscriptions.SubscriptionActivated",))
def activate_subscription(*, subscription_id: str, clock: Clock | None = None) -> Subscription:
    sub = _subscription(subscription_id)
    sub.activate(at=_clock(sub, clock).now())
    save_and_publish(sub)
    return sub


@command(
    aggregate="Subscription",
    records=(
        "subscriptions.TrialExpired",
        "subscriptions.PriceChanged",
        "subscriptions.SubscriptionActivated",
        "subscriptions.SubscriptionSuspended",
        "subscriptions.PriceChangeCancelled",
        "subscriptions.SubscriptionCancelled",
    ),
)
def expire_trial(*, subscription_id: str, clock: Clock | None = None) -> Subscription:
    sub = _subscription(subscription_id)
    sub.expire_trial(at=_clock(sub, clock).now(), has_payment_method=sub.customer.has_payment_method)
    save_and_publish(sub)
    return sub


@command(aggregate="Subscription", records=("subscriptions.TrialEndingSoon",))
def remind_trial_ending(*, subscription_id: str, days_before: int, clock: Clock | None = None) -> Subscription:
    sub = _subscription(subscription_id)
    sub.remind_trial_ending(
        at=_clock(sub, clock).now(), days_before=days_before, has_payment_method=sub.customer.has_payment_method
    )
    save_and_publish(sub)
    return sub


RENEWAL_FIELDS = [
    "status",
    "billing_anchor",
    "period_index",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "cancellation_reason",
    "cancelled_at",
    "pending_plan",
    "plan_version",
    "price_minor",
    "scheduled_migration_id",
    "scheduled_version",
    "scheduled_price_minor",
    "scheduled_effective_at",
]


@command(
    aggregate="Subscription",
    records=(
        "subscriptions.PriceChanged",
        "subscriptions.SubscriptionRenewed",
        "subscriptions.PriceChangeCancelled",
        "subscriptions.SubscriptionCancelled",
    ),
)
def renew_due_subscriptions(*, due: QuerySet, now, limit: int = LARGE_BATCH) -> int:
    """RenewSubscription for up to ``limit`` subscriptions whose period ended, in one transaction.

    A bill run renews many subscriptions at once; each still goes through
    ``Subscription.renew`` and keeps its own invariants. Rows are locked
    (skipping rows another worker holds), so a second run at the same time
    renews nothing twice; each renewal starts its own correlated chain.
    """
    subs = list(
        due.select_for_update(of=("self",), skip_locked=True)
        .select_related("plan")
        .order_by("current_period_end", "id")[:limit]
    )
    if not subs:
        return 0
    closing = {sub.pk: (sub.current_period_start, sub.current_period_end) for sub in subs}
    for sub in subs:
        sub.renew(at=now)
    bulk_save_locked(subs, RENEWAL_FIELDS)
    usage.open_usage_periods(subs, closing)
    append_batch(
        (
            Cause(
                new_correlation_id(),
                current_cause().causation_id,
                str(sub.test_clock_id) if sub.test_clock_id else None,
            ),
            sub.pull_events(),
        )
        for sub in subs
    )
    return len(subs)
