"""Events of the Subscription aggregate: its lifecycle, plan changes, and a price migration's
price changes (PriceChangeScheduled / PriceChangeCancelled / PriceChanged)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sharedkernel.events import Event
from sharedkernel.values import Money
from subscriptions.events.refs import PeriodRef, PlanRef


@dataclass(frozen=True)
class SubscriptionEvent(Event):
    aggregate_type = "Subscription"
    aggregate_id_field = "subscription_id"

    subscription_id: str
    customer_id: str
    plan: PlanRef
    status: str  #: trialing | pending_payment | active | suspended | cancelled (after the event)


@dataclass(frozen=True)
class SubscriptionCreated(SubscriptionEvent):
    """A subscription exists. Without a trial it waits in ``pending_payment``
    for its first invoice to be paid (Billing invoices it on this event)."""

    event_type = "subscriptions.SubscriptionCreated"

    price: Money  #: price per period in the subscription's currency
    period: PeriodRef  #: the first period (the trial, when there is one)
    trial: bool
    trial_end: datetime | None = None


@dataclass(frozen=True)
class PlanSelected(SubscriptionEvent):
    """The customer chose the plan the subscription starts on."""

    event_type = "subscriptions.PlanSelected"

    price: Money


@dataclass(frozen=True)
class TrialStarted(SubscriptionEvent):
    event_type = "subscriptions.TrialStarted"

    trial_start: datetime
    trial_end: datetime
    trial_days: int


@dataclass(frozen=True)
class TrialEndingSoon(SubscriptionEvent):
    """The trial ends within TRIAL_REMINDER_DAYS and the subscription is still
    trialing: the trigger for the trial-ending reminder."""

    event_type = "subscriptions.TrialEndingSoon"

    trial_end: datetime
    days_left: int
    has_payment_method: bool


@dataclass(frozen=True)
class TrialExpired(SubscriptionEvent):
    """The trial ran out. ``converted``: it becomes active (a payment method was
    on file) — followed by SubscriptionActivated — or else suspended."""

    event_type = "subscriptions.TrialExpired"

    trial_end: datetime
    converted: bool


@dataclass(frozen=True)
class PlanChangeRequested(SubscriptionEvent):
    """A change to a plan that needs staff approval (enterprise) is waiting."""

    event_type = "subscriptions.PlanChangeRequested"

    requested_plan: PlanRef
    requested_price: Money


@dataclass(frozen=True)
class PlanChangeDeclined(SubscriptionEvent):
    event_type = "subscriptions.PlanChangeDeclined"

    requested_plan: PlanRef


@dataclass(frozen=True)
class PlanChanged(SubscriptionEvent):
    """The subscription moved to another plan at ``changed_at``.

    ``plan`` is the new plan. Billing prorates from ``old_price`` over
    ``period`` (the period current at the change) to ``new_price`` over
    ``new_period``; the two are equal unless the interval changed (then the
    new period starts at the change). ``in_trial``: nothing to prorate.
    """

    event_type = "subscriptions.PlanChanged"

    old_plan: PlanRef
    old_price: Money
    new_price: Money
    changed_at: datetime
    period: PeriodRef
    new_period: PeriodRef
    direction: str  #: upgrade | downgrade
    in_trial: bool


@dataclass(frozen=True)
class SubscriptionActivated(SubscriptionEvent):
    """The subscription is live and billable from ``period.start``.

    ``reason``: ``first_payment`` (its first invoice was paid — already billed)
    or ``trial_converted`` (bill the first period now)."""

    event_type = "subscriptions.SubscriptionActivated"

    price: Money
    period: PeriodRef
    activated_at: datetime
    reason: str


@dataclass(frozen=True)
class SubscriptionSuspended(SubscriptionEvent):
    """Service paused. ``reason``: non_payment | no_payment_method | staff."""

    event_type = "subscriptions.SubscriptionSuspended"

    reason: str
    suspended_at: datetime


@dataclass(frozen=True)
class SubscriptionResumed(SubscriptionEvent):
    """Back to active. ``resumed_from``: suspended | scheduled_cancellation.
    ``period_restarted``: a new period starts now and has not been billed."""

    event_type = "subscriptions.SubscriptionResumed"

    price: Money
    resumed_from: str
    resumed_at: datetime
    period: PeriodRef
    period_restarted: bool


@dataclass(frozen=True)
class SubscriptionCancellationScheduled(SubscriptionEvent):
    """The subscription will end at ``cancel_at`` (end of the current period or trial)."""

    event_type = "subscriptions.SubscriptionCancellationScheduled"

    cancel_at: datetime
    reason: str


@dataclass(frozen=True)
class SubscriptionCancelled(SubscriptionEvent):
    """The subscription ended. Billing issues the final invoice and stops billing it."""

    event_type = "subscriptions.SubscriptionCancelled"

    price: Money
    reason: str
    cancelled_at: datetime
    at_period_end: bool
    period: PeriodRef  #: the period in which it ended
    previous_status: str


@dataclass(frozen=True)
class SubscriptionRenewed(SubscriptionEvent):
    """A period rolled over into ``period``; bill it (and ``previous_period``'s usage)."""

    event_type = "subscriptions.SubscriptionRenewed"

    price: Money
    previous_period: PeriodRef
    period: PeriodRef


# -- price changes (price migrations move subscriptions to a new plan version) ---------


@dataclass(frozen=True)
class PriceChangeScheduled(SubscriptionEvent):
    """The subscription moves from plan version ``from_version`` to ``to_version`` at its
    first renewal on or after ``effective_at`` (notice given: the customer is told now)."""

    event_type = "subscriptions.PriceChangeScheduled"

    migration_id: str
    from_version: int
    to_version: int
    old_price: Money
    new_price: Money
    effective_at: datetime


@dataclass(frozen=True)
class PriceChangeCancelled(SubscriptionEvent):
    """A scheduled price change will not happen. ``reason``: cancelled | plan_changed |
    migration_cancelled."""

    event_type = "subscriptions.PriceChangeCancelled"

    migration_id: str
    reason: str


@dataclass(frozen=True)
class PriceChanged(PriceChangeScheduled):
    """At the renewal on or after ``effective_at`` the subscription moved to ``to_version``
    (``plan.version``); the period starting then is billed at ``new_price``."""

    event_type = "subscriptions.PriceChanged"
