"""A bill run's worth of real customers, what beat does to them, and one count of every effect a
bill run has in the four contexts (the fault tests' given, when and then)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from sharedkernel.scheduling import run_job

#: Subscriptions per bill run (CI's budget: the fault tests together take a few minutes).
BILL_RUN = int(os.environ.get("FAULT_BILL_RUN_SIZE", "80"))


# -- a bill run's worth of customers ------------------------------------------------------------


@dataclass
class Population:
    plan_id: str
    customers: list[str]
    subscriptions: list[str]
    period_end: object


def populate(n: int, settings) -> Population:
    """``n`` customers with a working card and an active monthly subscription (first invoice paid),
    made by the contexts' own commands and handled in this process — the set-up, not under fault."""
    from billing.commands import update_payment_method
    from sharedkernel.bus import drain
    from subscriptions import commands
    from subscriptions.models import Subscription
    from tests.billing.helpers import plan as define_plan

    dispatch = settings.EVENT_DISPATCH
    settings.EVENT_DISPATCH = "manual"
    try:
        plan = define_plan("pro-m", "30.00 USD", name="Pro")
        customers = []
        for i in range(n):
            customer, _ = commands.register_customer(
                name=f"Customer {i}", email=f"c{i}@faults.example", currency="USD", country="GB"
            )
            customers.append(str(customer.pk))
        drain()
        for customer_id in customers:
            update_payment_method(customer_id=customer_id, token="pm_card_visa")
        drain()
        subs = [str(commands.subscribe(customer_id=c, plan_id=str(plan.pk)).pk) for c in customers]
        drain()
    finally:
        settings.EVENT_DISPATCH = dispatch
    statuses = Counter(Subscription.objects.values_list("status", flat=True))
    assert statuses == {"active": n}, statuses
    period_end = max(Subscription.objects.values_list("current_period_end", flat=True))
    return Population(str(plan.pk), customers, subs, period_end)


def bill_run_moment(population: Population):
    """The moment beat's renewal job finds every period of ``population`` ended."""
    return population.period_end + timedelta(minutes=1)


# -- every effect, counted ------------------------------------------------------------------------


def effects(smtp_sink=None, receiver=None) -> dict:
    """What a customer, staff or an integrator could see of a bill run, as exact counts."""
    from analytics.models import MrrMovement, RevenueEntry, SubscriptionView
    from billing.models import Invoice, Payment, PaymentAttempt
    from notifications.models import Notification, WebhookDelivery
    from sharedkernel.models import StoredEvent

    found = {
        "renewed": StoredEvent.objects.filter(event_type="subscriptions.SubscriptionRenewed").count(),
        "cycle_invoices": Invoice.objects.filter(billing_reason="subscription_cycle").count(),
        "paid_cycle_invoices": Invoice.objects.filter(billing_reason="subscription_cycle", status="paid").count(),
        "payments": Payment.objects.count(),
        "succeeded_payments": Payment.objects.filter(status="succeeded").count(),
        "attempts": PaymentAttempt.objects.count(),
        "invoice_mails": Notification.objects.filter(template="invoice", status="sent").count(),
        "receipt_mails": Notification.objects.filter(template="receipt", status="sent").count(),
        "webhook_deliveries": WebhookDelivery.objects.count(),
        "revenue_rows": RevenueEntry.objects.count(),
        "subscription_views": SubscriptionView.objects.count(),
        "mrr_movements": MrrMovement.objects.count(),
    }
    if smtp_sink is not None:
        with smtp_sink.lock:
            templates = Counter(m["X-SubscriptionHub-Template"] for _, m in smtp_sink.messages)
        found["smtp_invoice"], found["smtp_receipt"] = templates["invoice"], templates["receipt"]
        with smtp_sink.lock:
            ids = [m["Message-ID"] for _, m in smtp_sink.messages]
        found["smtp_duplicates"] = len(ids) - len(set(ids))
    if receiver is not None:
        with receiver.lock:
            ids = [r["event"]["event_id"] for r in receiver.received if r["event"]]
        found["webhooks_received"] = len(ids)
        found["webhook_duplicates"] = len(ids) - len(set(ids))
    return found


def difference(after: dict, before: dict) -> dict:
    return {key: after[key] - before.get(key, 0) for key in after}


def one_bill_run(n: int) -> dict:
    """What one bill run of ``n`` paying subscriptions adds, each exactly once."""
    return {
        "renewed": n,
        "cycle_invoices": n,
        "paid_cycle_invoices": n,
        "payments": n,
        "succeeded_payments": n,
        "attempts": n,
        "invoice_mails": n,
        "receipt_mails": n,
        "webhook_deliveries": 2 * n,  # SubscriptionRenewed and PaymentSucceeded, to one endpoint
        "revenue_rows": n,
        "subscription_views": 0,
        "mrr_movements": 0,  # a renewal at the same price moves no MRR
        "smtp_invoice": n,
        "smtp_receipt": n,
        "smtp_duplicates": 0,
        "webhooks_received": 2 * n,
        "webhook_duplicates": 0,
    }


def no_double_invoice_per_period() -> list:
    from django.db.models import Count

    from billing.models import Invoice

    return list(
        Invoice.objects.filter(subscription_id__isnull=False)
        .values("subscription_id", "period_start", "billing_reason")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )


def listen(receiver) -> None:
    """One endpoint for two event types of every customer, at ``receiver``."""
    from notifications.commands import register_endpoint

    endpoint = register_endpoint(
        url=receiver.url, events=["subscriptions.SubscriptionRenewed", "billing.PaymentSucceeded"]
    )
    receiver.secret = endpoint.secret


def renew_all(population: Population) -> None:
    """Beat's renewal job at :func:`bill_run_moment`: it finds every subscription of ``population`` due."""
    due = len(population.subscriptions)
    assert run_job("subscriptions.renew_subscriptions", now=bill_run_moment(population)) == due


def bill_run_in_progress(before: dict, n: int) -> bool:
    """Renewal invoices exist, not all of them paid yet."""
    done = difference(effects(), before)
    return done["cycle_invoices"] > 0 and done["paid_cycle_invoices"] < n


def assert_one_bill_run(before: dict, n: int, smtp_sink, receiver) -> None:
    """Since ``before``, every effect of one bill run of ``n`` happened exactly once, and no
    subscription's period was invoiced twice."""
    assert difference(effects(smtp_sink, receiver), before) == one_bill_run(n)
    assert no_double_invoice_per_period() == []
