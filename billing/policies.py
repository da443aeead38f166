"""Reactions of the Billing context (the purple stickies).

    subscriptions.CustomerRegistered       → OpenBillingAccount
    subscriptions.Plan*                    → Billing's copy of the plan (prices for previews)
    subscriptions.SubscriptionCreated      → first invoice when payment is due now (no trial)
    subscriptions.SubscriptionActivated    → first invoice when a trial converted
    subscriptions.SubscriptionRenewed      → invoice for the new period (the bill run, in batches)
    subscriptions.SubscriptionResumed      → invoice when a new period started on resuming
    subscriptions.PlanChanged              → prorated invoice (net > 0) or account credit (net < 0)
    subscriptions.SubscriptionCancelled    → stop billing; void the unpaid first invoice
    billing.InvoiceGenerated               → CalculateTax
    billing.TaxCalculated                  → FinalizeInvoice
    billing.InvoiceFinalized               → ProcessPayment
    billing.PaymentSucceeded               → mark the invoice paid
    billing.PaymentMethodUpdated           → retry failed payments at once

The first three (account, plans, subscription events) are ``read_your_writes``:
a client's request runs them before it answers, so what it created can be used
in its next call (docs/consistency.md). Every reaction happens at its cause's
time (``occurred_on``) and carries its cause, so a chain CustomerRegistered → … → PaymentSucceeded shares one
correlation id. Pipeline steps take whole batches of events.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial

from billing import commands
from billing.acl.subscriptions import CustomerFacts, PlanChangeFacts, PlanFacts, SubscriptionFacts, UsageFacts
from billing.commands import InvoiceRequest, Work, plan_line
from billing.models import BilledSubscription, BillingAccount, BillingPlan, Invoice, InvoiceStatus
from billing.values import BillingReason
from sharedkernel.bulk import bulk_update_rows, insert_rows
from sharedkernel.bus import LARGE_BATCH, after_commit, reacts_to
from sharedkernel.events import DomainEvent
from sharedkernel.eventstore import cause_of
from sharedkernel.projection import AppliedPosition, in_stored_order
from sharedkernel.values import Money


@reacts_to("subscriptions.CustomerRegistered", read_your_writes=True)
def open_billing_account(event: DomainEvent) -> None:
    facts = CustomerFacts.from_payload(event.payload)
    commands.open_account(
        customer_id=facts.customer_id,
        name=facts.name,
        email=facts.email,
        currency=facts.currency,
        country=facts.country,
        region=facts.region,
        tax_exempt=facts.tax_exempt,
        user_id=facts.user_id,
        test_clock_id=facts.test_clock_id,
        at=event.occurred_on,
    )


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
    if event.name in ("PlanArchived", "PlanRestored"):
        BillingPlan.objects.filter(pk=event.payload["plan_id"]).update(archived=event.name == "PlanArchived")
        return
    plan = PlanFacts.from_payload(event.payload)
    BillingPlan.objects.update_or_create(
        plan_id=plan.plan_id,
        defaults={
            "code": plan.code,
            "name": plan.name,
            "tier": plan.tier,
            "interval": plan.interval,
            "prices": plan.prices,
            "included_usage": plan.included_usage,
            "overage_rates": plan.overage_rates,
        },
    )


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


#: BilledSubscription applies each subscription's events in stored order, once (sharedkernel.projection).
APPLIED = AppliedPosition("source_position")


def _project(events: list[tuple[DomainEvent, SubscriptionFacts]]) -> None:
    """Keep BilledSubscription in step (``events`` in stored order); one already applied is skipped."""
    ids = {facts.subscription_id for _, facts in events}
    rows = {str(r.subscription_id): r for r in BilledSubscription.objects.select_for_update().filter(pk__in=ids)}
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
        if event.name == "PriceChangeScheduled":
            coming = Money.from_json(facts.raw["new_price"])
            row.coming_price_minor, row.coming_version = coming.minor_units, int(facts.raw["to_version"])
            row.coming_from = datetime.fromisoformat(facts.raw["effective_at"])
        elif event.name in ("PriceChangeCancelled", "PriceChanged"):
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


@reacts_to(*SUBSCRIPTION_EVENTS, batch=True, batch_size=LARGE_BATCH, read_your_writes=True)
def bill_subscriptions(events: list[DomainEvent]) -> None:
    """GenerateInvoice / GenerateProratedInvoice / ApplyCredit / VoidInvoice for subscription events."""
    read = in_stored_order(
        ((event, SubscriptionFacts.from_payload(event.event_type, event.payload)) for event in events),
        event=lambda pair: pair[0],
    )
    _project(read)
    metered = {
        str(pk)
        for pk, rates in BillingPlan.objects.filter(pk__in={f.plan_id for _, f in read}).values_list(
            "plan_id", "overage_rates"
        )
        if rates
    }
    requests: list[InvoiceRequest] = []
    for event, facts in read:
        p = facts.raw
        if (
            event.name == "SubscriptionCreated"
            and facts.status == "pending_payment"
            or event.name == "SubscriptionActivated"
            and p.get("reason") == "trial_converted"
        ):
            requests.append(_invoice_for(event, facts, BillingReason.SUBSCRIPTION_CREATE))
        elif event.name == "SubscriptionRenewed":
            # a metered plan's renewal waits for the closed period's usage (UsageCalculated)
            requests.append(
                _invoice_for(event, facts, BillingReason.SUBSCRIPTION_CYCLE, metered=facts.plan_id in metered)
            )
        elif event.name == "SubscriptionResumed" and p.get("period_restarted"):
            requests.append(_invoice_for(event, facts, BillingReason.SUBSCRIPTION_RESUME))
        elif event.name == "PlanChanged":
            commands.prorate_change(PlanChangeFacts.from_payload(p), cause=cause_of(event))
        elif event.name == "SubscriptionCancelled" and p.get("previous_status") == "pending_payment":
            commands.generate_invoices(requests)  # its first invoice may be in this very batch
            requests = []
            unpaid = Invoice.objects.filter(
                subscription_id=facts.subscription_id, status__in=[InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED]
            ).values_list("pk", flat=True)
            commands.void_many(
                [Work(str(pk), event.occurred_on, cause_of(event)) for pk in unpaid],
                reason="Subscription cancelled before its first payment",
            )
    commands.generate_invoices(requests)


def _work(events: list[DomainEvent], key: str = "invoice_id") -> list[Work]:
    return [Work(event.payload[key], event.occurred_on, cause_of(event)) for event in events]


@reacts_to("subscriptions.UsageCalculated", batch=True, batch_size=LARGE_BATCH)
def bill_usage(events: list[DomainEvent]) -> None:
    ready = commands.bill_usage_many(
        [
            (UsageFacts.from_payload(e.payload), Work(e.payload["subscription_id"], e.occurred_on, cause_of(e)))
            for e in events
        ]
    )

    if ready:
        after_commit(partial(commands.calculate_tax_many, ready))


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
