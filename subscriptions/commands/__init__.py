"""Application services of the Subscriptions context: one function per command, a module per aggregate.

Each loads the aggregate, calls its method, saves it (version-checked) and publishes its events, in
one transaction (``@command``); each docstring names the events it records. Time comes from the
customer's clock unless the caller passes one. The invariants themselves live in the aggregate
methods (subscriptions.models) and PlanChangePolicy (rules.py).
"""

from subscriptions.commands.customers import EmailTaken, record_payment_method, register_customer
from subscriptions.commands.plans import archive_plan, define_plan, restore_plan, revise_plan
from subscriptions.commands.price_migrations import (
    cancel_price_migration,
    cancel_scheduled_changes_batch,
    draft_price_migration,
    pause_price_migration,
    record_outcomes,
    resume_price_migration,
    schedule_price_change_batch,
    start_price_migration,
)
from subscriptions.commands.subscriptions import (
    activate_subscription,
    approve_plan_change,
    cancel_subscription,
    change_plan,
    decline_plan_change,
    expire_trial,
    plan_change_policy,
    record_dunning,
    remind_trial_ending,
    renew_due_subscriptions,
    resume_subscription,
    subscribe,
    suspend_subscription,
)
from subscriptions.commands.usage import calculate_due_periods, open_usage_periods, record_usage

__all__ = [
    "EmailTaken",
    "activate_subscription",
    "approve_plan_change",
    "archive_plan",
    "calculate_due_periods",
    "cancel_price_migration",
    "cancel_scheduled_changes_batch",
    "cancel_subscription",
    "change_plan",
    "decline_plan_change",
    "define_plan",
    "draft_price_migration",
    "expire_trial",
    "open_usage_periods",
    "pause_price_migration",
    "plan_change_policy",
    "record_dunning",
    "record_outcomes",
    "record_payment_method",
    "record_usage",
    "register_customer",
    "remind_trial_ending",
    "renew_due_subscriptions",
    "restore_plan",
    "resume_price_migration",
    "resume_subscription",
    "revise_plan",
    "schedule_price_change_batch",
    "start_price_migration",
    "subscribe",
    "suspend_subscription",
]
