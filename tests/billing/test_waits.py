"""Billing waits for an upstream fact instead of failing: an event that comes before what it needs
(the customer's account, the first invoice, the renewal invoice) is a WAITING delivery, handled when
the fact arrives — no error, no attempt counted."""

from __future__ import annotations

import pytest

from billing.commands.accounts import account_needed
from billing.commands.invoices import first_invoice_needed
from billing.models import Invoice, InvoiceStatus
from sharedkernel import bus
from sharedkernel.models import DeliveryStatus, EventDelivery
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan

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
