"""Invoice aggregate: Draft → Finalized → Paid | Voided, and every refused command."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import Invoice, InvoiceStatus, NothingToInvoice
from billing.values import BillingReason, InvoicePeriod, LineDraft, LineKind, TaxCalculation
from sharedkernel.errors import InvalidTransition
from sharedkernel.values import Money
from tests.conftest import at

T0 = at("2025-03-01 00:00")


def usd(text: str) -> Money:
    return Money(text, "USD")


def draft(*lines: LineDraft, currency="USD") -> Invoice:
    return Invoice.draft(
        customer_id="6a1f5e1e-0000-4000-8000-000000000001",
        customer_name="Ada",
        customer_email="ada@example.com",
        currency=currency,
        billing_reason=BillingReason.SUBSCRIPTION_CYCLE,
        lines=list(lines) or [LineDraft(LineKind.PLAN, "Pro (Mar)", usd("49.99"))],
        at=T0,
        subscription_id="6a1f5e1e-0000-4000-8000-000000000002",
        plan_name="Pro",
        period=InvoicePeriod(T0, at("2025-04-01 00:00")),
    )


def tax(rate="0.0725", amount="3.62", exempt=False) -> TaxCalculation:
    if exempt:
        return TaxCalculation(Decimal(0), usd("0.00"), "US-CA", "Tax exempt", True, "Customer is tax exempt")
    return TaxCalculation(Decimal(rate), usd(amount), "US-CA", "California sales tax")


def names(invoice) -> list[str]:
    return [e.event_type.split(".")[1] for e in invoice.recorded_events]


def test_draft_sums_plan_and_discount_lines_exactly():
    inv = draft(
        LineDraft(LineKind.PLAN, "Pro", usd("49.99")),
        LineDraft(LineKind.DISCOUNT, "20 % off", usd("-10.00")),
        LineDraft(LineKind.USAGE, "api_calls overage", usd("0.03"), quantity=3, metric="api_calls"),
    )
    assert inv.status == InvoiceStatus.DRAFT
    assert inv.subtotal == usd("40.02") and inv.total == usd("40.02")
    assert names(inv) == ["InvoiceGenerated"]
    generated = inv.recorded_events[0]
    assert [line.kind for line in generated.lines] == ["plan", "discount", "usage"]


def test_full_life_draft_tax_finalize_paid():
    inv = draft()
    inv.apply_tax(tax(), at=T0)
    assert inv.tax == usd("3.62") and inv.total == usd("53.61")
    used = inv.finalize(number="INV-2025-000001", credit_available=usd("0.00"), at=T0)
    assert used == usd("0.00")
    assert inv.status == InvoiceStatus.FINALIZED and inv.number == "INV-2025-000001"
    assert inv.amount_due == usd("53.61")
    inv.mark_paid(usd("53.61"), at=T0)
    assert inv.status == InvoiceStatus.PAID and inv.amount_paid == usd("53.61")
    assert names(inv) == ["InvoiceGenerated", "TaxCalculated", "InvoiceFinalized", "InvoicePaid"]
    finalized = inv.recorded_events[2]
    assert finalized.url.endswith(f"/billing/invoices/{inv.id}/")
    assert [line.kind for line in finalized.lines] == ["plan", "tax"]


def test_exempt_customer_gets_a_zero_tax_line_with_the_reason():
    inv = draft()
    inv.apply_tax(tax(exempt=True), at=T0)
    [tax_line] = [line for line in inv.all_lines if line.kind == "tax"]
    assert tax_line.amount == usd("0.00")
    assert "exempt" in tax_line.description.lower()


def test_credit_pays_part_of_the_invoice_on_a_credit_line():
    inv = draft()
    inv.apply_tax(tax(amount="0.01"), at=T0)
    used = inv.finalize(number="INV-2025-000002", credit_available=usd("20.00"), at=T0)
    assert used == usd("20.00")
    assert inv.credit_applied == usd("20.00")
    assert inv.amount_due == usd("30.00")
    assert [line.kind for line in inv.all_lines][-1] == "credit"


def test_credit_larger_than_the_total_leaves_nothing_due_and_the_rest_on_the_balance():
    inv = draft()
    inv.apply_tax(tax(amount="0.01"), at=T0)
    used = inv.finalize(number="INV-2025-000003", credit_available=usd("100.00"), at=T0)
    assert used == usd("50.00") and inv.amount_due == usd("0.00")


def test_refused_commands():
    with pytest.raises(NothingToInvoice):
        Invoice.draft(
            customer_id="6a1f5e1e-0000-4000-8000-000000000001",
            customer_name="A",
            customer_email="a@example.com",
            currency="USD",
            billing_reason=BillingReason.MANUAL,
            lines=[],
            at=T0,
        )
    with pytest.raises(InvalidTransition, match="cannot hold a line in EUR"):
        draft(LineDraft(LineKind.PLAN, "Pro", Money("10.00", "EUR")))
    with pytest.raises(InvalidTransition, match="added by the invoice itself"):
        draft(LineDraft(LineKind.TAX, "tax", usd("1.00")))

    inv = draft()
    with pytest.raises(InvalidTransition, match="only after its tax"):
        inv.finalize(number="X", credit_available=usd("0"), at=T0)
    inv.apply_tax(tax(), at=T0)
    with pytest.raises(InvalidTransition, match="already calculated"):
        inv.apply_tax(tax(), at=T0)
    with pytest.raises(InvalidTransition, match="before tax"):
        inv.add_line(LineDraft(LineKind.USAGE, "late", usd("1.00")), at=T0)
    with pytest.raises(InvalidTransition, match="only a finalized invoice is paid"):
        inv.mark_paid(inv.total, at=T0)
    inv.finalize(number="INV-2025-000009", credit_available=usd("0"), at=T0)
    # nothing changes after finalize
    with pytest.raises(InvalidTransition, match="only a draft"):
        inv.add_line(LineDraft(LineKind.USAGE, "late", usd("1.00")), at=T0)
    with pytest.raises(InvalidTransition, match="only a draft"):
        inv.finalize(number="INV-2025-000010", credit_available=usd("0"), at=T0)
    with pytest.raises(InvalidTransition, match="not"):
        inv.mark_paid(usd("1.00"), at=T0)
    inv.mark_paid(inv.amount_due, at=T0)
    with pytest.raises(InvalidTransition, match="only a draft or an unpaid invoice"):
        inv.void(reason="mistake", at=T0)


def test_add_line_before_tax_and_void():
    inv = draft()
    inv.add_line(LineDraft(LineKind.USAGE, "late usage", usd("2.01"), quantity=201, metric="api_calls"), at=T0)
    assert inv.subtotal == usd("52.00")
    assert names(inv) == ["InvoiceGenerated", "InvoiceLineItemAdded"]
    with pytest.raises(InvalidTransition, match="Say why"):
        inv.void(reason=" ", at=T0)
    inv.void(reason="Duplicate", at=T0)
    assert inv.status == InvoiceStatus.VOIDED
    with pytest.raises(InvalidTransition):
        inv.apply_tax(tax(), at=T0)


def test_kwd_and_jpy_totals_keep_their_minor_units():
    inv = draft(LineDraft(LineKind.PLAN, "Pro", Money("12.345", "KWD")), currency="KWD")
    inv.apply_tax(TaxCalculation(Decimal("0.05"), Money("0.617", "KWD"), "KW", "VAT"), at=T0)
    assert str(inv.total.amount) == "12.962"
    inv = draft(LineDraft(LineKind.PLAN, "Pro", Money("4980", "JPY")), currency="JPY")
    inv.apply_tax(TaxCalculation(Decimal("0.10"), Money("498", "JPY"), "JP", "JCT"), at=T0)
    assert str(inv.total.amount) == "5478"
