"""Customer pages of the Billing context: invoices (printable and PDF), payment
method, change plan with the proration preview, coupons. Each POST calls one command."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from billing import commands, queries
from billing.acl.payments import SandboxGateway
from billing.documents import invoice_pdf
from billing.models import BilledSubscription, BillingAccount, BillingPlan, Invoice, Payment
from sharedkernel.api.permissions import customer_id_of
from sharedkernel.errors import DomainError


def _account(request) -> BillingAccount | None:
    customer_id = customer_id_of(request.user)
    return BillingAccount.objects.filter(pk=customer_id).first() if customer_id else None


def _own_invoice(request, invoice_id) -> Invoice:
    query = Invoice.objects.prefetch_related("lines")
    if not request.user.is_staff:
        account = _account(request)
        if account is None:
            raise Http404
        query = query.filter(customer_id=account.customer_id)
    return get_object_or_404(query, pk=invoice_id)


def _own_subscription(request, subscription_id) -> BilledSubscription:
    account = _account(request)
    if account is None:
        raise Http404
    return get_object_or_404(BilledSubscription, pk=subscription_id, customer_id=account.customer_id)


@login_required
def invoices(request):
    account = _account(request)
    if account is None:
        return render(request, "subscriptions/no_customer.html")
    return render(
        request,
        "billing/invoices.html",
        {
            "account": account,
            "upcoming": queries.upcoming_bills(customer_id=account.customer_id),
            "invoices": queries.invoice_history(customer_id=account.customer_id),
            "credit": account.credit(account.currency),
        },
    )


@login_required
def invoice(request, invoice_id):
    inv = _own_invoice(request, invoice_id)
    payment = Payment.objects.prefetch_related("attempt_rows", "refunds").filter(invoice_id=inv.id).first()
    account = BillingAccount.objects.filter(pk=inv.customer_id).first()
    return render(request, "billing/invoice.html", {"invoice": inv, "payment": payment, "account": account})


@login_required
def invoice_pdf_download(request, invoice_id):
    inv = _own_invoice(request, invoice_id)
    account = BillingAccount.objects.filter(pk=inv.customer_id).first()
    response = HttpResponse(invoice_pdf(inv, account), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{inv.number or "draft-" + str(inv.id)[:8]}.pdf"'
    return response


@login_required
@require_POST
def pay_invoice(request, invoice_id):
    inv = _own_invoice(request, invoice_id)
    try:
        payment = commands.pay_invoice(invoice_id=str(inv.id))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        if payment.status == "succeeded":
            messages.success(request, f"Thank you — invoice {inv.number} is paid.")
        elif payment.status == "processing":  # the gateway did not answer yet; it is asked again shortly
            messages.info(request, f"Your payment of invoice {inv.number} is being processed.")
        else:
            messages.error(request, f"The payment did not go through: {payment.failure_message}")
    return redirect("billing:invoice", invoice_id=inv.id)


@login_required
def payment_method(request):
    account = _account(request)
    if account is None:
        return render(request, "subscriptions/no_customer.html")
    if request.method == "POST":
        try:
            commands.update_payment_method(customer_id=str(account.customer_id), token=request.POST.get("token", ""))
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Your payment method is saved. Any unpaid invoice is retried with it now.")
            return redirect("billing:payment_method")
    cards = [
        {"token": token, "brand": brand, "last4": last4, "outcome": "declines" if failure else "succeeds"}
        for token, (brand, last4, failure) in SandboxGateway.CARDS.items()
    ]
    sandbox = getattr(settings, "BILLING_PAYMENT_GATEWAY", "sandbox") == "sandbox"
    return render(request, "billing/payment_method.html", {"account": account, "cards": cards, "sandbox": sandbox})


@login_required
def change_plan(request, subscription_id):
    """Choose a plan, see exactly what it costs now (the same proration the API previews), confirm."""
    sub = _own_subscription(request, subscription_id)
    plans = [p for p in BillingPlan.objects.filter(archived=False) if p.price(sub.currency) is not None]
    chosen = next((p for p in plans if str(p.plan_id) == request.GET.get("plan")), None)
    preview, refusal, needs_approval = None, None, False
    if chosen is not None:
        # the one answer the API's preview gives too: refused and why, waiting for approval,
        # or what is charged or credited now
        try:
            answer = queries.plan_change_preview(subscription_id=str(sub.subscription_id), plan_id=str(chosen.plan_id))
        except DomainError as exc:
            refusal = exc.message
        else:
            preview, needs_approval = answer.proration, answer.needs_approval
    options = [{"plan": p, "price": p.price(sub.currency), "current": p.plan_id == sub.plan_id} for p in plans]
    return render(
        request,
        "billing/change_plan.html",
        {
            "sub": sub,
            "options": options,
            "chosen": chosen,
            "preview": preview,
            "refusal": refusal,
            "needs_approval": needs_approval,
        },
    )


@login_required
@require_POST
def apply_coupon(request, subscription_id):
    sub = _own_subscription(request, subscription_id)
    try:
        discount = commands.apply_coupon(subscription_id=str(sub.subscription_id), code=request.POST.get("code", ""))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Coupon {discount.coupon.code} applied: {discount.coupon.describe()}.")
    return redirect("billing:invoices")
