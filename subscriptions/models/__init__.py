"""Aggregates of the Subscriptions context, one module per aggregate.

State changes only through their methods; each checks its invariant, changes state and records the
events. Commands (subscriptions.commands) load, call, save and publish. Django finds the models here.
The package exports what other modules import from it; a word only the aggregate's own events say
(why it was activated, what it resumed from) stays in its module.
"""

from subscriptions.models.customers import Customer, SignupProfile
from subscriptions.models.plans import Plan, PlanOverageRate, PlanPrice, PlanVersion
from subscriptions.models.price_migrations import (
    ItemOutcome,
    LeftOut,
    MigrationStatus,
    PriceChangeDecision,
    PriceMigration,
    PriceMigrationItem,
)
from subscriptions.models.statuses import (
    LIVE_STATUSES,
    PriceChangeDropped,
    ResumeInitiator,
    SubscriptionStatus,
    SuspensionReason,
)
from subscriptions.models.subscriptions import Subscription
from subscriptions.models.usage import UsageCounter, UsagePeriod, UsageRecord

__all__ = [
    "LIVE_STATUSES",
    "Customer",
    "ItemOutcome",
    "LeftOut",
    "MigrationStatus",
    "Plan",
    "PlanOverageRate",
    "PlanPrice",
    "PlanVersion",
    "PriceChangeDropped",
    "PriceChangeDecision",
    "PriceMigration",
    "PriceMigrationItem",
    "ResumeInitiator",
    "SignupProfile",
    "Subscription",
    "SubscriptionStatus",
    "SuspensionReason",
    "UsageCounter",
    "UsagePeriod",
    "UsageRecord",
]
