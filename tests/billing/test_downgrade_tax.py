"""A downgrade's credit gives back the tax paid on the unused part (issue 13, docs/billing.md)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.models import BillingAccount, CreditEntry, Invoice, TaxRate
from billing.proration import prorate
from billing.values import InvoicePeriod
from sharedkernel.clock import FixedClock
from sharedkernel.values import Money
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan
from tests.conftest import at


def test_a_credit_with_tax_adds_the_tax_of_the_credited_net():
    period = InvoicePeriod(at("2030-01-01 00:00"), at("2030-02-01 00:00"))
    p = prorate(
        old_plan="Pro",
        old_price=Money("100.00", "EUR"),
        new_plan="Basic",
        new_price=Money("50.00", "EUR"),
        period=period,
        new_period=period,
        at=period.start,
    )
    assert p.size == Money("50.00", "EUR")
    assert p.credit_with_tax(Decimal("0.19")) == (Money("59.50", "EUR"), Money("9.50", "EUR"))
    assert p.credit_with_tax(None) == (Money("50.00", "EUR"), Money("0.00", "EUR"))


@pytest.mark.django_db(transaction=True)
def test_a_downgrade_credits_the_unused_part_with_the_tax_paid_on_it(drain):
    # given a German customer (19 % VAT) who paid Pro, 100.00 EUR + 19.00 VAT, for the month
    TaxRate.objects.create(country="DE", region="", rate="0.19", name="Umsatzsteuer")
    pro = plan(code="pro", price="100.00 EUR", tier="professional")
    basic = plan(code="basic", price="50.00 EUR", tier="basic")
    start = at("2030-03-01 00:00")
    ada = customer(drain, currency="EUR", country="DE", region="")
    sub = subs.subscribe(customer_id=str(ada.id), plan_id=str(pro.id), clock=FixedClock(start))
    drain()
    first = Invoice.objects.get(subscription_id=sub.id)
    assert (first.status, str(first.total)) == ("paid", "119.00 EUR")

    # when they move down to Basic at once
    subs.change_plan(subscription_id=str(sub.id), plan_id=str(basic.id), clock=FixedClock(start + timedelta(seconds=1)))
    drain()

    # then the credit is the unused 50.00 EUR net plus the 9.50 EUR of VAT paid on it
    entry = CreditEntry.objects.get(customer_id=ada.id, source="proration")
    assert Money.from_minor(entry.amount_minor, "EUR") == Money("59.50", "EUR")
    assert "including 9.50 EUR tax" in entry.reason
    assert BillingAccount.objects.get(pk=ada.id).credit("EUR") == Money("59.50", "EUR")
