"""Billing waits for an upstream fact instead of failing: an event that comes before what it needs
(the customer's account, the first invoice, the renewal invoice) is a WAITING delivery, handled when
the fact arrives — no error, no attempt counted."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from billing import commands as billing
from billing.commands.accounts import account_needed
from billing.commands.invoices import first_invoice_needed, renewal_invoice_needed
from billing.models import Invoice, InvoiceStatus
from billing.values import BillingReason, InvoicePeriod
from sharedkernel import bus
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.correlation import Cause, new_correlation_id
from sharedkernel.eventstore import append
from sharedkernel.models import DeliveryStatus, EventDelivery
from sharedkernel.values import Money
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan
from tests.conftest import at
from tests.helpers import ForeignEvent

pytestmark = pytest.mark.django_db


def run_only(handler: str) -> EventDelivery:
    """Deliver ``handler``'s open deliveries before anything else runs (the race), and return its one."""
    ids = list(EventDelivery.objects.filter(handler=handler).values_list("pk", flat=True))
    bus.run_deliveries(handler, ids)
    [delivery] = EventDelivery.objects.filter(handler=handler)
    return delivery


def test_a_first_invoice_for_a_customer_billing_has_not_heard_of_waits_for_the_account(drain):
    # given a customer whose CustomerRegistered has not reached Billing yet, who subscribes
    pro = plan()
    c, _ = subs.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    # when Billing handles the subscription first
    waiting = run_only("billing.invoice_new_subscription")
    # then it waits for the account, without an error or a counted attempt, and invoices nothing yet
    assert waiting.status == DeliveryStatus.WAITING
    assert waiting.waiting_for == account_needed(c.id)
    assert waiting.attempts == 0 and waiting.last_error == ""
    assert not Invoice.objects.filter(subscription_id=sub.id).exists()
    # and once the account is opened, the first invoice is made
    drain()
    assert EventDelivery.objects.get(pk=waiting.pk).status == DeliveryStatus.DONE
    assert Invoice.objects.get(subscription_id=sub.id).billing_reason == "subscription_create"


def test_a_cancellation_handled_before_the_first_invoice_waits_for_it_and_voids_it(drain):
    # given a subscription cancelled before its first payment, both events on their way to Billing
    pro = plan()
    c = customer(drain, card=None, country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    subs.cancel_subscription(subscription_id=str(sub.id), reason="changed my mind")
    # when the cancellation is handled before the invoice exists
    waiting = run_only("billing.void_unpaid_first_invoice")
    # then it waits for the first invoice
    assert waiting.status == DeliveryStatus.WAITING and waiting.last_error == ""
    assert waiting.waiting_for == first_invoice_needed(sub.id)
    # and once the invoice is made it is voided
    drain()
    assert EventDelivery.objects.get(pk=waiting.pk).status == DeliveryStatus.DONE
    assert Invoice.objects.get(subscription_id=sub.id).status == InvoiceStatus.VOIDED


def test_usage_that_comes_before_its_renewal_invoice_waits_for_it_and_lands_on_it(drain):
    # given a customer's closed period whose usage is calculated before the renewal is invoiced
    c = customer(drain, country="GB", region="")
    sub_id, start, end = str(uuid.uuid4()), at("2030-05-01 00:00"), at("2030-06-01 00:00")
    rate = {"amount": "0.01", "currency": "USD"}
    usage = {
        "subscription_id": sub_id,
        "customer_id": str(c.id),
        "plan_name": "API",
        "currency": "USD",
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "metrics": [{"metric": "api_calls", "used": 1500, "included": 1000, "overage": 500, "rate": rate}],
        "final": False,
    }
    # Subscriptions' event, as it publishes it: the closed period's usage, before its renewal
    usage_calculated = ForeignEvent("subscriptions.UsageCalculated", usage)
    with transaction.atomic():
        append([RecordedEvent(usage_calculated, end, "Subscription", sub_id, 7, None)])
    # when Billing handles it
    waiting = run_only("billing.bill_usage")
    # then it waits for the renewal invoice of the period after it
    assert waiting.status == DeliveryStatus.WAITING and waiting.last_error == ""
    assert waiting.waiting_for == renewal_invoice_needed(sub_id, end)
    # and once that invoice is drafted (waiting for usage), the overage lands on it
    with transaction.atomic():
        [renewal] = billing.generate_invoices(
            [
                billing.InvoiceRequest(
                    customer_id=str(c.id),
                    subscription_id=sub_id,
                    plan_name="API",
                    currency="USD",
                    reason=BillingReason.SUBSCRIPTION_CYCLE,
                    lines=(
                        billing.plan_line("API", Money("30.00", "USD"), InvoicePeriod(end, at("2030-07-01 00:00"))),
                    ),
                    at=end,
                    cause=Cause(new_correlation_id()),
                    period=InvoicePeriod(end, at("2030-07-01 00:00")),
                    awaiting_usage=True,
                )
            ]
        )
    drain()
    assert EventDelivery.objects.get(pk=waiting.pk).status == DeliveryStatus.DONE
    usage_line = Invoice.objects.get(pk=renewal.pk).lines.get(kind="usage")
    assert (usage_line.quantity, usage_line.amount) == (500, Money("5.00", "USD"))
