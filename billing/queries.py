"""Read models and previews of the Billing context: what a page, the API or the admin shows,
computed by the same rules the commands use (the one proration, the plan line, the discount), so
they never disagree. Some combine Billing's data with another context's answer through a port."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from billing import ports
from billing.commands.accounts import load_account
from billing.commands.invoices import plan_line
from billing.models import (
    BilledSubscription,
    BillingAccount,
    BillingPlan,
    Discount,
    Invoice,
    InvoiceStatus,
)
from billing.ports import tax_calculator
from billing.proration import Proration, prorate
from billing.values import (
    InvoicePeriod,
    LineDraft,
    LineKind,
    SubscriptionState,
    TaxUnavailable,
)
from sharedkernel.clock import clock_for
from sharedkernel.errors import DomainError, InvalidInput, InvalidTransition, NotFound
from sharedkernel.periods import nth_period
from sharedkernel.values import Money


@dataclass(frozen=True)
class PlanChangePreview:
    """What changing plan now would do: the proration charged or credited at once, or nothing
    yet because the change waits for staff approval (``proration`` is then None)."""

    proration: Proration | None
    needs_approval: bool = False
    message: str = ""


def plan_change_preview(*, subscription_id: str, plan_id: str, at: datetime | None = None) -> PlanChangePreview:
    """The one answer to "what if I change to that plan now?" for the customer page and the API.

    Subscriptions' PlanChangePolicy first (through the PlanChangeRules port): a change the
    ChangePlan command would refuse raises the DomainError with the command's code
    (``downgrade_during_trial``, ``same_plan``, ...), so a preview never offers what the command
    refuses. A change that needs staff approval charges nothing now (the proration is computed
    when staff approve). Otherwise Billing's one proration."""
    try:
        plan_id = str(uuid.UUID(str(plan_id)))
    except ValueError:
        raise InvalidInput("The plan is a plan id (a UUID).", details={"plan": "not a plan id"}) from None
    rules = ports.plan_change_rules()
    outlook = rules.outlook(subscription_id=str(subscription_id), plan_id=plan_id) if rules else None
    # "not_found" from Subscriptions: Billing's own lookups below answer with their own 404/400
    if outlook is not None and outlook.refused and outlook.refused_code != "not_found":
        raise DomainError(outlook.message, code=outlook.refused_code)
    proration = preview_plan_change(subscription_id=str(subscription_id), plan_id=plan_id, at=at)
    if outlook is not None and outlook.needs_approval:
        name = BillingPlan.objects.filter(pk=plan_id).values_list("name", flat=True).first() or "This plan"
        return PlanChangePreview(
            proration=None,
            needs_approval=True,
            message=f"{name} needs staff approval: nothing changes or is charged until staff approve the change.",
        )
    return PlanChangePreview(proration=proration)


def preview_plan_change(*, subscription_id: str, plan_id: str, at: datetime | None = None) -> Proration:
    """What changing to ``plan_id`` now would charge or credit (the API and the page show this)."""
    sub = BilledSubscription.objects.filter(pk=subscription_id).first()
    if sub is None:
        raise NotFound("No such subscription.")
    try:
        plan_id = uuid.UUID(str(plan_id))
    except ValueError:
        raise InvalidInput("The plan is a plan id (a UUID).", details={"plan": "not a plan id"}) from None
    plan = BillingPlan.objects.filter(pk=plan_id).first()
    if plan is None:
        raise InvalidInput("No such plan.", details={"plan": "does not exist"})
    if not sub.live:
        raise InvalidTransition("A cancelled subscription cannot change plan.")
    if str(plan.plan_id) == str(sub.plan_id):
        raise _PreviewRefused("same_plan", f"The subscription is already on {plan.name}.")
    if plan.archived:
        raise _PreviewRefused("plan_unavailable", f"{plan.name} is no longer offered.")
    new_price = plan.price(sub.currency)
    if new_price is None:
        raise _PreviewRefused("currency_not_offered", f"{plan.name} is not sold in {sub.currency}.")
    at = at or clock_for(sub.test_clock_id).now()
    period = InvoicePeriod(sub.period_start, sub.period_end)
    if sub.status == SubscriptionState.TRIALING:
        return Proration(lines=(), net=Money.zero(sub.currency))
    if not period.start <= at < period.end:
        raise InvalidTransition("The subscription's current period is not running.")
    # a new interval starts a period now, by the rule Subscriptions moves it with
    new_period = period if plan.interval == sub.interval else InvoicePeriod(*nth_period(at, plan.interval, 0))
    return prorate(
        old_plan=sub.plan_name,
        old_price=sub.price,
        new_plan=plan.name,
        new_price=new_price,
        period=period,
        new_period=new_period,
        at=at,
    )


class _PreviewRefused(DomainError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class UpcomingInvoice:
    lines: tuple[LineDraft, ...]
    subtotal: Money
    tax: Money
    total: Money
    credit_applied: Money
    amount_due: Money
    period: InvoicePeriod


def upcoming_invoice(*, subscription_id: str) -> UpcomingInvoice:
    """The invoice the next renewal will produce, if nothing changes before then."""
    sub = BilledSubscription.objects.filter(pk=subscription_id).first()
    if sub is None:
        raise NotFound("No such subscription.")
    if not sub.live:
        raise InvalidTransition("A cancelled subscription has no upcoming invoice.")
    account = load_account(sub.customer_id)
    period = InvoicePeriod(*sub.next_period())
    price, version = sub.price_from(period.start)  # a scheduled price change shows from its renewal on
    lines = [plan_line(sub.plan_name, price, period, version)]
    discount = Discount.objects.select_related("coupon").filter(pk=sub.subscription_id).first()
    line = discount.line_on(price) if discount is not None else None
    if line is not None:
        lines.append(line)
    subtotal = Money.total((line.amount for line in lines), sub.currency)
    try:
        tax = tax_calculator().calculate(
            amount=max(subtotal, Money.zero(sub.currency)), jurisdiction=account.jurisdiction, exempt=account.tax_exempt
        )
    except TaxUnavailable:
        raise InvalidTransition("Tax cannot be calculated right now; try again shortly.") from None
    lines.append(LineDraft(LineKind.TAX, tax.describe(), tax.tax))
    total = subtotal + tax.tax
    credit = min(account.credit(sub.currency), total) if total.is_positive() else Money.zero(sub.currency)
    if credit.is_positive():
        lines.append(LineDraft(LineKind.CREDIT, "Account credit applied", -credit))
    return UpcomingInvoice(tuple(lines), subtotal, tax.tax, total, credit, total - credit, period)


def accounts_opened(customer_ids: set[str]) -> set[str]:
    """Which of these customers Billing has an account for (one query)."""
    return {str(pk) for pk in BillingAccount.objects.filter(pk__in=customer_ids).values_list("pk", flat=True)}


@dataclass(frozen=True)
class UpcomingBill:
    """A live subscription on the customer's billing page: its next invoice (None when it cannot be
    previewed now, e.g. tax is unavailable) and its discount."""

    sub: BilledSubscription
    preview: UpcomingInvoice | None
    discount: Discount | None


def upcoming_bills(*, customer_id) -> list[UpcomingBill]:
    """Each live subscription of the customer with the invoice its next renewal will produce."""
    subscriptions = list(
        BilledSubscription.objects.filter(customer_id=customer_id).exclude(status=SubscriptionState.CANCELLED)
    )
    discounts = {
        d.subscription_id: d
        for d in Discount.objects.select_related("coupon").filter(
            subscription_id__in=[s.subscription_id for s in subscriptions]
        )
    }
    bills = []
    for sub in subscriptions:
        try:
            preview = upcoming_invoice(subscription_id=str(sub.subscription_id))
        except DomainError:
            preview = None
        bills.append(UpcomingBill(sub, preview, discounts.get(sub.subscription_id)))
    return bills


def invoice_history(*, customer_id, limit: int = 100) -> list[Invoice]:
    """The customer's issued invoices (not drafts), newest first."""
    return list(
        Invoice.objects.filter(customer_id=customer_id)
        .exclude(status=InvoiceStatus.DRAFT)
        .order_by("-created_at")[:limit]
    )
