"""GenerateProratedInvoice / ApplyCredit for a plan change (the one proration, billing/proration.py)."""

from __future__ import annotations

from billing.acl.subscriptions import PlanChangeFacts
from billing.commands.accounts import credit_account, load_account
from billing.commands.invoices import InvoiceRequest, generate_invoices
from billing.commands.unit_of_work import UnitOfWork
from billing.models import (
    CreditEntry,
    Invoice,
    InvoiceStatus,
)
from billing.proration import Proration, prorate
from billing.values import (
    BillingReason,
    InvoicePeriod,
    LineDraft,
    LineKind,
)
from sharedkernel.commands import command
from sharedkernel.correlation import Cause

# -- plan changes ----------------------------------------------------------------------


@command(
    aggregate="Invoice",
    records=("billing.InvoiceGenerated", "billing.InvoiceLineItemAdded", "billing.CreditApplied"),
    name="billing.prorate_change",
    own_transaction=False,
)
def prorate_change(change: PlanChangeFacts, *, cause: Cause) -> Proration | None:
    """GenerateProratedInvoice (net > 0) or ApplyCredit (net < 0) for a PlanChanged.

    Records billing.InvoiceGenerated, billing.InvoiceLineItemAdded, billing.CreditApplied."""
    if change.in_trial:
        return None
    if not (change.period.start <= change.changed_at < change.period.end) or not (
        change.new_period.start <= change.changed_at < change.new_period.end
    ):
        # The period had already run out (its renewal was still to come): nothing of it is left to
        # prorate; the renewal bills the new plan for the next period.
        return None
    proration = prorate(
        old_plan=change.old_plan_name,
        old_price=change.old_price,
        new_plan=change.new_plan_name,
        new_price=change.new_price,
        period=change.period,
        new_period=change.new_period,
        at=change.changed_at,
    )
    if proration.charges_now:
        generate_invoices(
            [
                InvoiceRequest(
                    customer_id=change.customer_id,
                    subscription_id=change.subscription_id,
                    plan_name=change.new_plan_name,
                    currency=proration.net.currency,
                    reason=BillingReason.SUBSCRIPTION_UPDATE,
                    lines=tuple(
                        LineDraft(LineKind.PRORATION, line.description, line.amount) for line in proration.lines
                    ),
                    at=change.changed_at,
                    cause=cause,
                    period=InvoicePeriod(change.changed_at, change.new_period.end),
                )
            ]
        )
    elif proration.credits:
        account = load_account(change.customer_id, lock=True)
        credit, tax = proration.credit_with_tax(_tax_rate_of_period(change))
        reason = f"Unused time on {change.old_plan_name} after moving to {change.new_plan_name}"
        if tax.is_positive():
            reason += f" (including {tax} tax paid on it)"
        uow = UnitOfWork()
        credit_account(
            uow,
            account,
            credit,
            reason=reason,
            source=CreditEntry.Source.PRORATION,
            at=change.changed_at,
            cause=cause,
            subscription_id=change.subscription_id,
        )
        uow.commit()
    return proration


def _tax_rate_of_period(change: PlanChangeFacts):
    """The rate the changed period was invoiced with: that of the subscription's latest issued
    invoice for the old plan started on or before the change (None when it was not taxed)."""
    invoice = (
        Invoice.objects.filter(
            subscription_id=change.subscription_id,
            status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.PAID],
            created_at__lte=change.changed_at,
        )
        .exclude(tax_rate=None)
        .order_by("-created_at")
        .only("tax_rate")
        .first()
    )
    return invoice.tax_rate if invoice is not None else None
