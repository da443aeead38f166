"""The invoice pipeline through policies, handled in-process (the worker runs the same code)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing import commands as billing
from billing.models import (
    BillingAccount,
    CreditEntry,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    TaxRate,
)
from sharedkernel.errors import DomainError, InvalidInput, InvalidTransition
from sharedkernel.values import Money
from subscriptions import commands as subs
from subscriptions.models import Subscription
from tests.billing.helpers import customer, plan
from tests.helpers import event_types

pytestmark = pytest.mark.django_db


@pytest.fixture
def ca_tax(db):
    return TaxRate.objects.create(country="US", region="CA", rate=Decimal("0.0725"), name="California sales tax")


def test_customer_registration_opens_a_billing_account(drain):
    c = customer(drain, card=None)
    account = BillingAccount.objects.get(pk=c.id)
    assert (account.name, account.country, account.region, account.currency) == ("Ada Lovelace", "US", "CA", "USD")
    assert not account.has_payment_method


def test_subscribing_without_trial_invoices_taxes_charges_and_activates(drain, ca_tax):
    pro = plan(price="30.00 USD")
    c = customer(drain)
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    invoice = Invoice.objects.get(subscription_id=sub.id)
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.number.startswith("INV-") and invoice.billing_reason == "subscription_create"
    assert [(line.kind, line.amount) for line in invoice.lines.all()] == [
        ("plan", Money("30.00", "USD")),
        ("tax", Money("2.18", "USD")),  # 30.00 × 7.25 % = 2.175 → 2.18
    ]
    assert invoice.amount_due == invoice.amount_paid == Money("32.18", "USD")
    payment = Payment.objects.get(invoice_id=invoice.id)
    assert payment.status == PaymentStatus.SUCCEEDED and payment.attempt_rows.get().raw["status"] == "succeeded"
    assert Subscription.objects.get(pk=sub.id).status == "active"
    chain = event_types(invoice.id)
    assert chain == [
        "billing.InvoiceGenerated",
        "billing.TaxCalculated",
        "billing.InvoiceFinalized",
        "billing.InvoicePaid",
    ]


def test_a_declined_first_payment_leaves_the_subscription_pending(drain):
    pro = plan()
    c = customer(drain, card="pm_card_chargeDeclined")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    payment = Payment.objects.get(subscription_id=sub.id)
    assert payment.status == PaymentStatus.FAILED and payment.failure_code == "card_declined"
    assert payment.next_retry_at is not None
    assert Subscription.objects.get(pk=sub.id).status == "pending_payment"
    # a new card pays at once and activates
    billing.update_payment_method(customer_id=str(c.id), token="pm_card_visa")
    drain()
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED
    assert Subscription.objects.get(pk=sub.id).status == "active"


def test_invoice_numbers_are_sequential_without_gaps(drain):
    pro = plan()
    numbers = []
    for i in range(3):
        c = customer(drain, email=f"c{i}@example.com")
        subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
        drain()
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    year = numbers[0].split("-")[1]
    assert numbers == [f"INV-{year}-{n:06d}" for n in (1, 2, 3)]


def test_unknown_payment_token_is_refused_with_the_valid_ones_named(drain):
    c = customer(drain, card=None)
    with pytest.raises(InvalidInput, match="pm_card_visa"):
        billing.update_payment_method(customer_id=str(c.id), token="pm_card_bogus")
    assert not BillingAccount.objects.get(pk=c.id).has_payment_method


def test_credit_pays_the_next_invoice_and_is_recorded_in_the_ledger(drain):
    pro = plan(price="30.00 USD")
    c = customer(drain, country="GB", region="")
    billing.grant_credit(customer_id=str(c.id), amount=Money("10.00", "USD"), reason="Sorry for the outage")
    drain()
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    invoice = Invoice.objects.get(subscription_id=sub.id)
    assert invoice.credit_applied == Money("10.00", "USD") and invoice.amount_paid == Money("20.00", "USD")
    assert BillingAccount.objects.get(pk=c.id).credit("USD") == Money("0.00", "USD")
    assert list(CreditEntry.objects.order_by("id").values_list("amount_minor", "balance_minor")) == [
        (1000, 1000),
        (-1000, 0),
    ]


def test_refund_is_capped_at_what_was_paid(drain):
    pro = plan(price="30.00 USD")
    c = customer(drain, country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    payment = Payment.objects.get(subscription_id=sub.id)
    refund = billing.refund_payment(payment_id=str(payment.id), amount=Money("10.00", "USD"), reason="goodwill")
    assert refund.credit_note_number.startswith("CN-")
    with pytest.raises(DomainError, match="At most 20.00"):
        billing.refund_payment(payment_id=str(payment.id), amount=Money("20.01", "USD"), reason="too much")
    billing.refund_payment(payment_id=str(payment.id), amount=Money("20.00", "USD"), reason="rest")
    assert Payment.objects.get(pk=payment.pk).amount_refunded == Money("30.00", "USD")
    assert event_types(payment.id).count("billing.RefundIssued") == 2


def test_void_stops_collection_and_cannot_void_a_paid_invoice(drain):
    pro = plan()
    c = customer(drain, card="pm_card_chargeDeclined", country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    invoice = Invoice.objects.get(subscription_id=sub.id)
    billing.void_invoice(invoice_id=str(invoice.id), reason="Customer went away")
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.VOIDED
    assert Payment.objects.get(invoice_id=invoice.id).status == PaymentStatus.CANCELLED
    with pytest.raises(InvalidTransition):
        billing.void_invoice(invoice_id=str(invoice.id), reason="again")


def test_a_subscription_cancelled_before_its_first_payment_has_its_invoice_voided_even_in_one_batch(drain):
    pro = plan()
    c = customer(drain, card=None, country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    subs.cancel_subscription(subscription_id=str(sub.id), reason="changed my mind")
    drain()  # SubscriptionCreated and SubscriptionCancelled reach Billing together
    invoice = Invoice.objects.get(subscription_id=sub.id)
    assert invoice.status == InvoiceStatus.VOIDED
    assert not Payment.objects.filter(invoice_id=invoice.id, status="failed").exists()
