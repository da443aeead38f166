"""Events published by the Subscriptions context — its published language.

Every field below is a payload field, as consumers receive it in JSON:
Money is ``{"amount": "49.99", "currency": "USD"}``, times are ISO 8601 UTC,
ids are UUID strings. Consumers translate these payloads in their own acl.py.

Every subscription event carries ``customer_id``, the ``plan`` (a PlanRef) and
``status`` — the subscription's status *after* the event — so a consumer never
needs to ask for more. The event store's position orders the events of one
subscription; ``aggregate_version`` does not (one command may record several
events at one version, e.g. TrialExpired and SubscriptionActivated), so a
projection applies them by position (sharedkernel.projection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sharedkernel.events import Event, encode
from sharedkernel.values import EmailAddress, Money, UnitRate


@dataclass(frozen=True)
class PlanRef:
    """The plan as billing, notifications and analytics need it."""

    id: str
    code: str
    name: str
    tier: str  #: basic | professional | enterprise
    interval: str  #: month | year
    version: int = 1  #: the plan version the subscription is billed on after the event


@dataclass(frozen=True)
class PeriodRef:
    """A billing period [start, end) and the billing anchor its grid is counted from.

    The period after one ending at ``end`` is ``sharedkernel.periods.period_after(anchor,
    plan interval, end)`` — the rule Subscriptions renews by (a Jan 31 anchor: Feb 28, Mar 31).
    During a trial ``anchor`` is the trial's end, where billing starts. ``anchor`` is absent
    from events stored before it was published, and from usage periods.
    """

    start: datetime
    end: datetime
    anchor: datetime | None = None


# -- customers ---------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRegistered(Event):
    """A customer exists. Billing opens an account, Notifications a recipient."""

    event_type = "subscriptions.CustomerRegistered"
    aggregate_type = "Customer"
    aggregate_id_field = "customer_id"

    customer_id: str
    name: str
    email: EmailAddress
    currency: str  #: preferred ISO 4217 currency
    country: str  #: ISO 3166-1 alpha-2
    region: str  #: state/province code, "" when none
    tax_exempt: bool
    test_clock_id: str | None = None  #: the test clock the customer lives on
    user_id: int | None = None  #: their login, if they have one


# -- plans (internal catalogue events, not sent to webhooks) -----------------------------


@dataclass(frozen=True)
class PlanCreated(Event):
    """A plan was added to the catalogue."""

    event_type = "subscriptions.PlanCreated"
    aggregate_type = "Plan"
    aggregate_id_field = "plan_id"
    public = False

    plan_id: str
    code: str
    name: str
    tier: str
    interval: str
    trial_days: int
    prices: list[Money]  #: one per currency the plan is sold in
    features: list[str] = field(default_factory=list)
    included_usage: dict[str, int] = field(default_factory=dict)  #: metric → quantity per period
    #: metric → price per unit, per currency (up to 6 decimals; stored events wrote the same JSON as Money)
    overage_rates: dict[str, list[UnitRate]] = field(default_factory=dict)
    version: int = 1  #: the plan version these terms are (1, 2, 3, …)
    current_from: datetime | None = None  #: when this version became current for new subscriptions


@dataclass(frozen=True)
class PlanUpdated(PlanCreated):
    """A new version of a plan: its complete terms, current for new subscriptions from
    ``current_from``. Existing subscriptions stay on their version (and price) until a
    price migration moves them (PriceChanged)."""

    event_type = "subscriptions.PlanUpdated"


@dataclass(frozen=True)
class PlanArchived(Event):
    """No new subscriptions to this plan; existing ones stay valid."""

    event_type = "subscriptions.PlanArchived"
    aggregate_type = "Plan"
    aggregate_id_field = "plan_id"
    public = False

    plan_id: str
    code: str


@dataclass(frozen=True)
class PlanRestored(PlanArchived):
    """An archived plan is offered again."""

    event_type = "subscriptions.PlanRestored"


# -- subscriptions -----------------------------------------------------------------


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


# -- price migrations (staff operations, internal) -----------------------------------


@dataclass(frozen=True)
class PriceMigrationDrafted(Event):
    """Staff drafted a move of a plan's subscriptions to ``to_version``. Empty lists select all:
    ``from_versions`` (all older versions), ``currencies``, ``subscription_ids`` (all matching)."""

    event_type = "subscriptions.PriceMigrationDrafted"
    aggregate_type = "PriceMigration"
    aggregate_id_field = "migration_id"
    public = False

    migration_id: str
    plan_id: str
    to_version: int
    effective_from: datetime
    from_versions: list[int] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    subscription_ids: list[str] = field(default_factory=list)
    created_before: datetime | None = None


@dataclass(frozen=True)
class PriceMigrationStarted(Event):
    """The migration schedules its price changes (in batches, by the beat job)."""

    event_type = "subscriptions.PriceMigrationStarted"
    aggregate_type = "PriceMigration"
    aggregate_id_field = "migration_id"
    public = False

    migration_id: str


@dataclass(frozen=True)
class PriceMigrationPaused(PriceMigrationStarted):
    """No more price changes are scheduled until it is resumed (scheduled ones still apply)."""

    event_type = "subscriptions.PriceMigrationPaused"


@dataclass(frozen=True)
class PriceMigrationResumed(PriceMigrationStarted):
    """Scheduling continues where it stopped."""

    event_type = "subscriptions.PriceMigrationResumed"


@dataclass(frozen=True)
class PriceMigrationCancelled(PriceMigrationStarted):
    """The migration stops; price changes it scheduled and that have not happened are cancelled."""

    event_type = "subscriptions.PriceMigrationCancelled"


@dataclass(frozen=True)
class PriceMigrationCompleted(PriceMigrationStarted):
    """Every selected subscription has its price change scheduled or was left out."""

    event_type = "subscriptions.PriceMigrationCompleted"

    scheduled: int
    left_out: int


# -- usage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageTotal:
    subscription_id: str
    customer_id: str
    metric: str
    quantity: int  #: accepted in this batch
    period_start: datetime  #: the period the usage counts towards


@dataclass(frozen=True)
class UsageRecorded(Event):
    """A batch of usage records was accepted (one event per ingestion request; the
    records themselves are kept, deduplicated by idempotency key, as UsageRecord rows)."""

    event_type = "subscriptions.UsageRecorded"
    aggregate_type = "UsageBatch"
    aggregate_id_field = "batch_id"

    batch_id: str
    accepted: int
    duplicates: int
    totals: list[UsageTotal]

    def payload(self) -> dict:
        """What the generic encoder gives (a test holds the two equal), written out: a batch carries
        up to a thousand totals and walking each through ``encode`` was a tenth of an ingestion call."""
        iso: dict[datetime, str] = {}  # a batch's totals share a few period starts
        for t in self.totals:
            if t.period_start not in iso:
                iso[t.period_start] = encode(t.period_start)
        return {
            "batch_id": self.batch_id,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "totals": [
                {
                    "subscription_id": t.subscription_id,
                    "customer_id": t.customer_id,
                    "metric": t.metric,
                    "quantity": t.quantity,
                    "period_start": iso[t.period_start],
                }
                for t in self.totals
            ],
        }


@dataclass(frozen=True)
class UsageThresholdReached(Event):
    """Usage of a metric reached ``threshold_percent`` (80, then 100) of what the plan includes,
    once per period."""

    event_type = "subscriptions.UsageThresholdReached"
    aggregate_type = "UsageCounter"
    aggregate_id_field = "counter_id"

    counter_id: str
    subscription_id: str
    customer_id: str
    metric: str
    threshold_percent: int
    used: int
    included: int
    period_start: datetime


@dataclass(frozen=True)
class UsageQuotaExceeded(UsageThresholdReached):
    """Usage went over what the plan includes; the excess is billed as overage."""

    event_type = "subscriptions.UsageQuotaExceeded"


@dataclass(frozen=True)
class MetricUsage:
    metric: str
    used: int
    included: int
    overage: int  #: max(0, used − included)
    rate: UnitRate | None  #: price per unit over the included quantity, up to 6 decimals (None: not billed)


@dataclass(frozen=True)
class UsageCalculated(Event):
    """A period's usage is final (its grace window for late records has passed).
    Billing adds the overage to the invoice; ``final`` when the subscription ended with it."""

    event_type = "subscriptions.UsageCalculated"
    aggregate_type = "UsagePeriod"
    aggregate_id_field = "usage_period_id"

    usage_period_id: str
    subscription_id: str
    customer_id: str
    plan_name: str
    currency: str
    period: PeriodRef
    metrics: list[MetricUsage]
    final: bool
