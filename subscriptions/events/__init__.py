"""Events published by the Subscriptions context — its published language, one module per aggregate.

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

from subscriptions.events.customers import (
    CustomerRegistered,
)
from subscriptions.events.plans import (
    PlanArchived,
    PlanCreated,
    PlanRestored,
    PlanUpdated,
)
from subscriptions.events.price_migrations import (
    PriceMigrationCancelled,
    PriceMigrationCompleted,
    PriceMigrationDrafted,
    PriceMigrationPaused,
    PriceMigrationResumed,
    PriceMigrationStarted,
)
from subscriptions.events.refs import (
    PeriodRef,
    PlanRef,
)
from subscriptions.events.subscriptions import (
    PlanChanged,
    PlanChangeDeclined,
    PlanChangeRequested,
    PlanSelected,
    PriceChangeCancelled,
    PriceChanged,
    PriceChangeScheduled,
    SubscriptionActivated,
    SubscriptionCancellationScheduled,
    SubscriptionCancelled,
    SubscriptionCreated,
    SubscriptionEvent,
    SubscriptionRenewed,
    SubscriptionResumed,
    SubscriptionSuspended,
    TrialEndingSoon,
    TrialExpired,
    TrialStarted,
)
from subscriptions.events.usage import (
    MetricUsage,
    UsageCalculated,
    UsageQuotaExceeded,
    UsageRecorded,
    UsageThresholdReached,
    UsageTotal,
)

__all__ = [
    "CustomerRegistered",
    "MetricUsage",
    "PeriodRef",
    "PlanArchived",
    "PlanChangeDeclined",
    "PlanChangeRequested",
    "PlanChanged",
    "PlanCreated",
    "PlanRef",
    "PlanRestored",
    "PlanSelected",
    "PlanUpdated",
    "PriceChangeCancelled",
    "PriceChangeScheduled",
    "PriceChanged",
    "PriceMigrationCancelled",
    "PriceMigrationCompleted",
    "PriceMigrationDrafted",
    "PriceMigrationPaused",
    "PriceMigrationResumed",
    "PriceMigrationStarted",
    "SubscriptionActivated",
    "SubscriptionCancellationScheduled",
    "SubscriptionCancelled",
    "SubscriptionCreated",
    "SubscriptionEvent",
    "SubscriptionRenewed",
    "SubscriptionResumed",
    "SubscriptionSuspended",
    "TrialEndingSoon",
    "TrialExpired",
    "TrialStarted",
    "UsageCalculated",
    "UsageQuotaExceeded",
    "UsageRecorded",
    "UsageThresholdReached",
    "UsageTotal",
]
