"""Reactions of the Billing context (the purple stickies), one handler each.

    subscriptions.CustomerRegistered                  → open_billing_account: OpenBillingAccount
    subscriptions.Plan*                               → follow_plans (projection: BillingPlan)
    subscriptions.Subscription* / PlanChanged / ...   → project_billed_subscriptions (projection: BilledSubscription)
    subscriptions.SubscriptionCreated (payment due)   → invoice_new_subscription: GenerateInvoice
    subscriptions.SubscriptionActivated (trial over)  → invoice_converted_trial: GenerateInvoice
    subscriptions.SubscriptionRenewed                 → invoice_renewal: GenerateInvoice (the bill run, in batches)
    subscriptions.SubscriptionResumed (new period)    → invoice_resumed_period: GenerateInvoice
    subscriptions.PlanChanged                         → prorate_plan_change: GenerateProratedInvoice / ApplyCredit
    subscriptions.SubscriptionCancelled (unpaid)      → void_unpaid_first_invoice: VoidInvoice
    subscriptions.UsageCalculated                     → bill_usage: overage onto the renewal invoice
    billing.InvoiceGenerated                          → calculate_tax: CalculateTax
    billing.TaxCalculated                             → finalize_invoice: FinalizeInvoice
    billing.InvoiceFinalized                          → process_payment: ProcessPayment
    billing.PaymentSucceeded                          → mark_invoice_paid
    billing.PaymentMethodUpdated                      → retry_with_new_payment_method: RetryPayment at once

The account, the plans, the subscription copy and the subscription reactions are
``read_your_writes``: a client's request runs them before it answers, so what it
created can be used in its next call (docs/consistency.md). Every reaction happens
at its cause's time (``occurred_on``) and carries its cause, so a chain
CustomerRegistered → … → PaymentSucceeded shares one correlation id. Pipeline steps
take whole batches of events. Other contexts' payloads are read in billing/acl only.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from typing import TypeVar

from billing import commands
from billing.acl.subscriptions import (
    PlanAvailability,
    PlanChangeFacts,
    PriceNews,
    SubscriptionFacts,
    UsageFacts,
    account_holder,
    plan_facts,
)
from billing.commands import InvoiceRequest, Work, plan_line
from billing.commands.accounts import account_needed
from billing.commands.invoices import first_invoice_needed
from billing.models import BilledSubscription, BillingAccount, BillingPlan, Invoice, InvoiceStatus
from billing.queries import accounts_opened
from billing.values import BillingReason
from sharedkernel.bulk import bulk_update_rows, insert_rows
from sharedkernel.bus import LARGE_BATCH, after_commit, reacts_to, wait_for
from sharedkernel.events import DomainEvent
from sharedkernel.eventstore import cause_of
from sharedkernel.projection import AppliedPosition, in_stored_order
from sharedkernel.values import Money

T = TypeVar("T")


@reacts_to("subscriptions.CustomerRegistered", read_your_writes=True)
def open_billing_account(event: DomainEvent) -> None:
    commands.open_account(**account_holder(event.payload), at=event.occurred_on)


def _forget_plans() -> None:
    BillingPlan.objects.all().delete()


@reacts_to(
    "subscriptions.PlanCreated",
    "subscriptions.PlanUpdated",
    "subscriptions.PlanArchived",
    "subscriptions.PlanRestored",
    replay_safe=True,
    reset=_forget_plans,
    read_your_writes=True,
)
def follow_plans(event: DomainEvent) -> None:
    """Billing's copy of each plan (BillingPlan: prices for previews, usage rates). A projection."""
    plan = plan_facts(event.event_type, event.payload)
    if isinstance(plan, PlanAvailability):
        BillingPlan.objects.filter(pk=plan.plan_id).update(archived=plan.archived)
        return
    terms = asdict(plan)  # BillingPlan's columns are the plan's facts (billing/acl), field for field
    BillingPlan.objects.update_or_create(plan_id=terms.pop("plan_id"), defaults=terms)


SUBSCRIPTION_EVENTS = (
    "subscriptions.SubscriptionCreated",
    "subscriptions.SubscriptionActivated",
    "subscriptions.SubscriptionSuspended",
    "subscriptions.SubscriptionResumed",
    "subscriptions.SubscriptionRenewed",
    "subscriptions.SubscriptionCancelled",
    "subscriptions.PlanChanged",
    "subscriptions.TrialExpired",
    "subscriptions.PriceChanged",
    "subscriptions.PriceChangeScheduled",
    "subscriptions.PriceChangeCancelled",
)


def _read(events: list[DomainEvent]) -> list[tuple[DomainEvent, SubscriptionFacts]]:
    """The batch read for Billing (billing/acl), in stored order."""
    return in_stored_order(
        ((event, SubscriptionFacts.from_payload(event.event_type, event.payload)) for event in events),
        event=lambda pair: pair[0],
    )


#: BilledSubscription applies each subscription's events in stored order, once (sharedkernel.projection).
APPLIED = AppliedPosition("source_position")


#: The one handler the subscription reactions below were split from (open deliveries come to them).
BILL_SUBSCRIPTIONS = ("billing.bill_subscriptions",)
#: How Billing reacts to a subscription's events: in batches (a bill run), before a client's next call.
reacts_to_subscription = partial(
    reacts_to, batch=True, batch_size=LARGE_BATCH, read_your_writes=True, replaces=BILL_SUBSCRIPTIONS
)


@reacts_to(
    *SUBSCRIPTION_EVENTS,
    batch=True,
    batch_size=LARGE_BATCH,
    replay_safe=True,
    read_your_writes=True,
    replaces=BILL_SUBSCRIPTIONS,
)
def project_billed_subscriptions(events: list[DomainEvent]) -> None:
    """Billing's copy of each subscription (BilledSubscription: plan, price, period, status), read by
    previews, the upcoming invoice, coupons and credits. A projection, replay-safe."""
    _project(_read(events))


def _project(events: list[tuple[DomainEvent, SubscriptionFacts]]) -> None:
    """Keep BilledSubscription in step (``events`` in stored order); one already applied is skipped."""
    ids = {facts.subscription_id for _, facts in events}
    rows = {
        str(r.subscription_id): r
        for r in BilledSubscription.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    }
    clocks = dict(
        BillingAccount.objects.filter(pk__in={f.customer_id for _, f in events}).values_list("pk", "test_clock_id")
    )
    created, changed = {}, {}
    for event, facts in events:
        row = rows.get(facts.subscription_id)
        if row is None:
            if facts.price is None or facts.period is None:
                continue  # a creation event arrives with both; wait for it
            row = BilledSubscription(
                subscription_id=facts.subscription_id,
                customer_id=facts.customer_id,
                test_clock_id=clocks.get(uuid.UUID(facts.customer_id)),
            )
            rows[facts.subscription_id] = created[facts.subscription_id] = row
        elif not APPLIED.is_new(row, event):
            continue
        else:
            changed[facts.subscription_id] = row
        APPLIED.take(row, event)
        row.source_version = event.aggregate_version
        row.plan_id, row.plan_name, row.plan_code = facts.plan_id, facts.plan_name, facts.plan_code
        row.interval, row.status = facts.interval, facts.status
        if facts.price is not None:
            row.currency, row.price_minor = facts.price.currency, facts.price.minor_units
        if facts.period is not None:
            row.period_start, row.period_end = facts.period.start, facts.period.end
        if facts.anchor is not None:
            row.billing_anchor = facts.anchor
        row.plan_version = facts.plan_version
        if facts.coming_price is not None:
            coming = facts.coming_price
            row.coming_price_minor, row.coming_version = coming.price.minor_units, coming.version
            row.coming_from = coming.effective_at
        elif facts.price_news == PriceNews.SETTLED:
            row.coming_price_minor = row.coming_version = row.coming_from = None
    insert_rows(list(created.values()))
    fields = ["plan_id", "plan_name", "plan_code", "interval", "status", "currency", "price_minor"]
    bulk_update_rows(
        [r for k, r in changed.items() if k not in created],
        [
            *fields,
            "period_start",
            "period_end",
            "billing_anchor",
            "source_version",
            "source_position",
            "plan_version",
            "coming_price_minor",
            "coming_version",
            "coming_from",
        ],
    )


def _invoice_for(
    event: DomainEvent, facts: SubscriptionFacts, reason: BillingReason, *, metered: bool = False
) -> InvoiceRequest:
    return InvoiceRequest(
        customer_id=facts.customer_id,
        subscription_id=facts.subscription_id,
        plan_name=facts.plan_name,
        currency=facts.price.currency,
        reason=reason,
        lines=(plan_line(facts.plan_name, facts.price, facts.period, facts.plan_version),),
        at=event.occurred_on,
        cause=cause_of(event),
        period=facts.period,
        awaiting_usage=metered,
    )


def _with_account(read: list[tuple[DomainEvent, T]], customer_of: Callable[[T], str]) -> list[tuple[DomainEvent, T]]:
    """The events whose customer Billing has an account for; the others wait for it (their
    CustomerRegistered is still on its way: ``open_account`` says when it arrived)."""
    known = accounts_opened({customer_of(facts) for _, facts in read})
    ready = []
    for event, facts in read:
        if customer_of(facts) in known:
            ready.append((event, facts))
        else:
            wait_for(event, account_needed(customer_of(facts)))
    return ready


def _of_customer(facts: SubscriptionFacts) -> str:
    return facts.customer_id


def _invoice_each(events: list[DomainEvent], reason: BillingReason, due: Callable[[SubscriptionFacts], bool]) -> None:
    read = _with_account([(event, facts) for event, facts in _read(events) if due(facts)], _of_customer)
    commands.generate_invoices([_invoice_for(event, facts, reason) for event, facts in read])


@reacts_to_subscription("subscriptions.SubscriptionCreated")
def invoice_new_subscription(events: list[DomainEvent]) -> None:
    """SubscriptionCreated with payment due now (no trial) → GenerateInvoice (its first invoice)."""
    _invoice_each(events, BillingReason.SUBSCRIPTION_CREATE, lambda facts: facts.awaits_first_payment)


@reacts_to_subscription("subscriptions.SubscriptionActivated")
def invoice_converted_trial(events: list[DomainEvent]) -> None:
    """SubscriptionActivated because its trial converted → GenerateInvoice (its first paid period)."""
    _invoice_each(events, BillingReason.SUBSCRIPTION_CREATE, lambda facts: facts.trial_converted)


@reacts_to_subscription("subscriptions.SubscriptionRenewed")
def invoice_renewal(events: list[DomainEvent]) -> None:
    """SubscriptionRenewed → GenerateInvoice for the new period (the bill run, in batches). A metered
    plan's invoice waits for the closed period's usage (UsageCalculated, :func:`bill_usage`)."""
    read = _with_account(_read(events), _of_customer)
    metered = {
        str(pk)
        for pk, rates in BillingPlan.objects.filter(pk__in={f.plan_id for _, f in read}).values_list(
            "plan_id", "overage_rates"
        )
        if rates
    }
    commands.generate_invoices(
        [
            _invoice_for(event, facts, BillingReason.SUBSCRIPTION_CYCLE, metered=facts.plan_id in metered)
            for event, facts in read
        ]
    )


@reacts_to_subscription("subscriptions.SubscriptionResumed")
def invoice_resumed_period(events: list[DomainEvent]) -> None:
    """SubscriptionResumed into a new, unbilled period → GenerateInvoice for it."""
    _invoice_each(events, BillingReason.SUBSCRIPTION_RESUME, lambda facts: facts.period_restarted)


@reacts_to_subscription("subscriptions.PlanChanged")
def prorate_plan_change(events: list[DomainEvent]) -> None:
    """PlanChanged → GenerateProratedInvoice (net > 0) or ApplyCredit (net < 0), in stored order."""
    read = [(event, PlanChangeFacts.from_payload(event.payload)) for event in in_stored_order(events)]
    for event, change in _with_account(read, lambda change: change.customer_id):
        commands.prorate_change(change, cause=cause_of(event))


@reacts_to_subscription("subscriptions.SubscriptionCancelled")
def void_unpaid_first_invoice(events: list[DomainEvent]) -> None:
    """SubscriptionCancelled before its first payment → VoidInvoice for what is still unpaid.

    The first invoice is made by :func:`invoice_new_subscription`; a cancellation handled before it
    waits for that invoice."""
    for event, facts in _read(events):
        if not facts.cancelled_before_first_payment:
            continue
        invoices = Invoice.objects.filter(subscription_id=facts.subscription_id)
        if not invoices.filter(billing_reason=BillingReason.SUBSCRIPTION_CREATE.value).exists():
            wait_for(event, first_invoice_needed(facts.subscription_id))
            continue
        unpaid = invoices.filter(status__in=[InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED]).values_list("pk", flat=True)
        commands.void_many(
            [Work(str(pk), event.occurred_on, cause_of(event)) for pk in unpaid],
            reason="Subscription cancelled before its first payment",
        )


def _work(events: list[DomainEvent], key: str = "invoice_id") -> list[Work]:
    return [Work(event.payload[key], event.occurred_on, cause_of(event)) for event in events]


@reacts_to("subscriptions.UsageCalculated", batch=True, batch_size=LARGE_BATCH)
def bill_usage(events: list[DomainEvent]) -> None:
    """UsageCalculated → overage onto the renewal invoice waiting for it (then CalculateTax), or an
    invoice of its own when the renewal was billed already or the subscription ended. Usage that
    comes before its renewal invoice waits for it (``generate_invoices`` says when it arrived)."""
    read = _with_account([(e, UsageFacts.from_payload(e.payload)) for e in events], lambda usage: usage.customer_id)
    billed = commands.bill_usage_many(
        [(usage, Work(usage.subscription_id, event.occurred_on, cause_of(event))) for event, usage in read]
    )
    for work, needs in billed.early:
        wait_for(work.cause.causation_id, needs)
    if billed.ready:
        after_commit(partial(commands.calculate_tax_many, billed.ready))


@reacts_to("billing.InvoiceGenerated", batch=True, batch_size=LARGE_BATCH)
def calculate_tax(events: list[DomainEvent]) -> None:
    """The tax calculator is asked once this transaction committed; until its answer is recorded the
    drafts carry a retry time, for billing.retry_tax should this worker die first."""
    work = commands.await_tax(_work(events))
    after_commit(partial(commands.calculate_tax_many, work))


@reacts_to("billing.TaxCalculated", batch=True, batch_size=LARGE_BATCH)
def finalize_invoice(events: list[DomainEvent]) -> None:
    commands.finalize_many(_work(events))


@reacts_to("billing.InvoiceFinalized", batch=True, batch_size=LARGE_BATCH)
def process_payment(events: list[DomainEvent]) -> None:
    """The attempts are recorded here; the gateway is asked once this transaction committed."""
    charging = commands.collect_many(_work(events))
    if charging:
        after_commit(partial(commands.charge_in_flight, charging))


@reacts_to("billing.PaymentSucceeded", batch=True, batch_size=LARGE_BATCH)
def mark_invoice_paid(events: list[DomainEvent]) -> None:
    commands.mark_paid_many(
        [(work, Money.from_json(event.payload["amount"])) for work, event in zip(_work(events), events, strict=True)]
    )


@reacts_to("billing.PaymentMethodUpdated")
def retry_with_new_payment_method(event: DomainEvent) -> None:
    if event.payload.get("has_payment_method"):
        charging = commands.retry_after_new_payment_method(
            event.payload["customer_id"], at=event.occurred_on, cause=cause_of(event)
        )
        if charging:
            after_commit(partial(commands.charge_in_flight, charging))
