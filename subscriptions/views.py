"""Customer pages of the Subscriptions context: plan catalogue, subscribe,
dashboard, cancel and resume. Each POST calls one command."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from sharedkernel.clock import clock_for
from sharedkernel.errors import DomainError
from subscriptions import commands, queries
from subscriptions.forms import CancelForm
from subscriptions.models import Customer, Plan, Subscription
from subscriptions.queries import catalog_currencies, plan_catalog, subscription_summaries, summarize


def _customer(request) -> Customer | None:
    if not request.user.is_authenticated:
        return None
    return Customer.objects.filter(user=request.user).first()


def _own_subscription(request, subscription_id) -> Subscription:
    customer = _customer(request)
    if customer is None:
        raise Http404
    return get_object_or_404(
        Subscription.objects.select_related("plan", "pending_plan"), pk=subscription_id, customer=customer
    )


def plans(request):
    customer = _customer(request)
    currencies = catalog_currencies()
    default = customer.currency if customer else "USD"
    currency = (request.GET.get("currency") or default).upper()
    if currencies and currency not in currencies:
        currency = currencies[0]
    trial_used = bool(customer and customer.subscriptions.filter(trial_start__isnull=False).exists())
    return render(
        request,
        "subscriptions/plans.html",
        {
            "entries": plan_catalog(currency),
            "currency": currency,
            "currencies": currencies,
            "customer": customer,
            "trial_used": trial_used,
        },
    )


@login_required
def dashboard(request):
    customer = _customer(request)
    if customer is None:
        return render(request, "subscriptions/no_customer.html", status=200)
    return render(
        request,
        "subscriptions/dashboard.html",
        {"customer": customer, "summaries": subscription_summaries(customer)},
    )


@login_required
def subscribe(request, code):
    customer = _customer(request)
    if customer is None:
        return render(request, "subscriptions/no_customer.html")
    plan = get_object_or_404(Plan.objects.prefetch_related("price_rows"), code=code, archived=False)
    currency = (request.POST.get("currency") or request.GET.get("currency") or customer.currency).upper()
    trial = (request.POST.get("trial") or request.GET.get("trial")) in ("1", "true", "on")
    price = plan.price_in(currency)
    if request.method == "POST":
        try:
            commands.subscribe(customer_id=customer.pk, plan_id=plan.pk, currency=currency, trial=trial)
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            if trial:
                messages.success(request, f"Your {plan.trial_days}-day free trial of {plan.name} has started.")
            else:
                messages.success(
                    request, f"You subscribed to {plan.name}. It becomes active once the first invoice is paid."
                )
            return redirect("subscriptions:dashboard")
    return render(
        request,
        "subscriptions/subscribe.html",
        {"plan": plan, "price": price, "currency": currency, "trial": trial, "customer": customer},
    )


@login_required
def cancel(request, subscription_id):
    sub = _own_subscription(request, subscription_id)
    form = CancelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            commands.cancel_subscription(
                subscription_id=sub.pk,
                reason=form.cleaned_data["reason"],
                at_period_end=form.cleaned_data["when"] == "period_end",
                expected_version=int(request.POST.get("version", sub.version)),
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            if form.cleaned_data["when"] == "period_end":
                messages.success(request, f"{sub.plan.name} will end on {sub.current_period_end:%B %-d, %Y}.")
            else:
                messages.success(request, f"{sub.plan.name} is cancelled.")
            return redirect("subscriptions:dashboard")
    summary = summarize(sub, clock_for(sub.test_clock_id).now())
    return render(request, "subscriptions/cancel.html", {"sub": summary, "form": form})


@login_required
@require_POST
def resume(request, subscription_id):
    sub = _own_subscription(request, subscription_id)
    try:
        commands.resume_subscription(
            subscription_id=sub.pk, expected_version=int(request.POST.get("version", sub.version))
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{sub.plan.name} continues; the scheduled cancellation is withdrawn.")
    return redirect("subscriptions:dashboard")


@login_required
@require_POST
def change_plan(request, subscription_id):
    """ChangePlan, confirmed by the customer after seeing Billing's proration preview."""
    sub = _own_subscription(request, subscription_id)
    target = Plan.objects.filter(pk=request.POST.get("plan"), archived=False).first()
    if target is None:
        messages.error(request, "Choose one of the plans on offer.")
        return redirect("subscriptions:dashboard")
    try:
        _, changed = commands.change_plan(subscription_id=sub.pk, plan_id=target.pk)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        if changed:
            messages.success(request, f"You are now on {target.name}. Any difference is on your invoices page.")
        else:
            messages.info(request, f"Your change to {target.name} is waiting for our team's approval.")
    return redirect("subscriptions:dashboard")


@login_required
def usage_page(request, subscription_id):
    """Usage per metric for the open period and the ones before, with a bar chart."""
    sub = _own_subscription(request, subscription_id)
    current = queries.usage_of(sub)
    history = queries.usage_history(sub, periods=6)
    metrics = sorted({m for _, totals in history for m in totals} | {m.metric for m in current})
    included = sub.plan.included_usage or {}
    chart = []
    for metric in metrics:
        peak = max([included.get(metric, 0)] + [totals.get(metric, 0) for _, totals in history]) or 1
        chart.append(
            {
                "metric": metric,
                "included": included.get(metric, 0),
                "included_pct": round(100 * included.get(metric, 0) / peak),
                "bars": [
                    {
                        "start": start,
                        "used": totals.get(metric, 0),
                        "pct": round(100 * totals.get(metric, 0) / peak),
                        "over": totals.get(metric, 0) > included.get(metric, 0) > 0,
                    }
                    for start, totals in history
                ],
            }
        )
    return render(request, "subscriptions/usage.html", {"sub": sub, "current": current, "chart": chart})
