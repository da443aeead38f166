"""Staff dashboards: MRR and its movements, revenue by period, churn, subscriptions by plan and status,
the at-risk list; every view exportable as CSV. And a price migration's impact page, replayed from
the event store (analytics.impact), with its CSV."""

from __future__ import annotations

import functools
import uuid
from decimal import Decimal

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe

from analytics import charts, commands, impact, queries, reports
from analytics.models import CustomerName
from sharedkernel.clock import SystemClock
from sharedkernel.values import Money


@staff_member_required
def dashboard(request):
    currencies = queries.currencies()
    currency = request.GET.get("currency") or (currencies[0] if currencies else "USD")
    group = request.GET.get("group") if request.GET.get("group") in queries.TRUNC else "month"
    series = queries.mrr_series(currency)
    months = queries.movements_by_month(currency)
    revenue = [r for r in queries.revenue(group) if r["currency"] == currency]
    churn = queries.churn()
    plans = sorted({r["plan"] for r in revenue})
    periods = sorted({r["period"] for r in revenue})
    label = {"month": "%b %Y", "quarter": "Q%q %Y", "year": "%Y"}[group]

    def period_label(d):
        return d.strftime(label.replace("%q", str((d.month - 1) // 3 + 1)))

    context = {
        "currency": currency,
        "currencies": currencies,
        "group": group,
        "mrr_now": queries.current_mrr(currency),
        "mrr_chart": mark_safe(
            charts.line(
                f"MRR ({currency})",
                [p.day.isoformat() for p in series],
                {"MRR": [float(p.mrr.amount) for p in series]},
                fill=True,
            )
        )
        if series
        else "",
        "movement_chart": mark_safe(
            charts.bars(
                f"MRR movements per month ({currency})",
                [m["month"].strftime("%b %Y") for m in months],
                {
                    k.replace("_", " ").title(): [float(m[k].amount) for m in months]
                    for k in ("new", "expansion", "reactivation", "contraction", "churned", "price_change")
                },
            )
        )
        if months
        else "",
        "months": months,
        "revenue": revenue,
        "revenue_chart": mark_safe(
            charts.stacked(
                f"Revenue net of refunds ({currency})",
                [period_label(p) for p in periods],
                {
                    plan: [
                        float(sum((r["revenue"].amount for r in revenue if r["plan"] == plan and r["period"] == p), 0))
                        for p in periods
                    ]
                    for plan in plans
                },
            )
        )
        if revenue
        else "",
        "period_label": period_label,
        "churn": churn,
        "churn_chart": mark_safe(
            charts.bars(
                "Churn rate per month (%)",
                [c.month.strftime("%b %Y") for c in churn],
                {"Churn %": [round(100 * c.rate, 1) for c in churn]},
            )
        )
        if churn
        else "",
        "by_plan": queries.by_plan_and_status(),
        "at_risk": queries.at_risk(),
        "views": reports.VIEWS,
    }
    return render(request, "analytics/dashboard.html", context)


@staff_member_required
def export_csv(request, view):
    if view not in reports.VIEWS:
        raise Http404
    text = commands.export_view(view=view, by=request.user.get_username())
    response = HttpResponse(text, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{view}.csv"'
    return response


IMPACT_MONTHS = (3, 6, 12, 24)


def _impact_months(request) -> int | None:
    raw = request.GET.get("months", "6")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 24:
        return None
    return int(raw)


def _bad_months(request):
    return render(
        request,
        "400.html",
        {
            "message": f"months must be a whole number from 1 to 24 (got “{request.GET.get('months')}”).",
            "back": request.path,
            "back_label": "Show the last 6 months",
        },
        status=400,
    )


def _amounts(rows, key) -> list[float]:
    return [float(r[key].amount) for r in rows]


def _actual_beside_proposed(draw, title: str, rows, measure: str) -> str:
    """One of the impact page's two charts side by side: drawn at the size it is shown, so its
    labels stay readable."""
    series = {"Actual": _amounts(rows, f"actual_{measure}"), "Proposed": _amounts(rows, f"proposed_{measure}")}
    return mark_safe(draw(title, [r["month"] for r in rows], series, width=520, height=300))


def _impact_context(result, months: int) -> dict:
    """Per currency: its rows (history and projection), charts and the invoice counts beside them."""
    invoices = {(r["month"], r["currency"]): r for r in result.invoices}
    sections = []
    for currency in sorted({r["currency"] for r in result.months}):
        rows = [r for r in result.months if r["currency"] == currency]
        for r in rows:
            inv = invoices[(r["month"], currency)]
            r["invoices"], r["actual_total"], r["proposed_total"] = (
                inv["count"],
                inv["actual_total"],
                inv["proposed_total"],
            )
            r["revenue_change"] = r["proposed_revenue"] - r["actual_revenue"]
            r["mrr_change"] = r["proposed_mrr"] - r["actual_mrr"]
        projection = [r for r in result.projection if r["currency"] == currency]
        for r in projection:
            r["mrr_change"] = r["proposed_mrr"] - r["actual_mrr"]
        sections.append(
            {
                "currency": currency,
                "rows": rows,
                "projection": projection,
                "totals": {
                    k: sum((r[k] for r in rows), Money.zero(currency))
                    for k in ("actual_revenue", "proposed_revenue", "actual_total", "proposed_total", "revenue_change")
                },
                "invoice_count": sum(r["invoices"] for r in rows),
                "mrr_chart": _actual_beside_proposed(charts.line, f"MRR at month end ({currency})", rows, "mrr"),
                "revenue_chart": _actual_beside_proposed(
                    charts.bars, f"Revenue before tax ({currency})", rows, "revenue"
                ),
                "projection_chart": mark_safe(
                    charts.line(
                        f"MRR, next 12 months ({currency})",
                        [r["month"] for r in projection],
                        {
                            "Current terms": _amounts(projection, "actual_mrr"),
                            "Proposed terms": _amounts(projection, "proposed_mrr"),
                        },
                    )
                )
                if projection
                else "",
            }
        )
    names = {c.customer_id: c for c in CustomerName.objects.filter(pk__in=[r["customer"] for r in result.customers])}
    customers = [{**r, "who": names.get(uuid.UUID(r["customer"]))} for r in result.customers if r["change"].amount > 0]
    return {"sections": sections, "customers": customers}


def _of_a_migration(view):
    """The impact page and its CSV, for staff: ``?months=`` is checked (a 400 page says what it may
    be) and a migration that does not exist is a 404; ``view`` gets the id and the months."""

    @staff_member_required
    @functools.wraps(view)
    def checked(request, migration_id):
        months = _impact_months(request)
        if months is None:
            return _bad_months(request)
        try:
            return view(request, str(migration_id), months)
        except impact.UnknownMigration:
            raise Http404("No such price migration.") from None

    return checked


@_of_a_migration
def price_impact(request, migration_id: str, months: int):
    """The impact page: the migration's effect on the last N months, replayed from the stored events."""
    result = impact.impact_of(migration_id, now=SystemClock().now(), months=months)
    context = {
        "migration_id": migration_id,
        "months": months,
        "month_choices": IMPACT_MONTHS,
        "result": result,
        "assumptions": result.assumptions,
        "churn_pct": Decimal(result.assumptions["monthly_churn_rate"]) * 100,
        "upgrade_pct": Decimal(result.assumptions["monthly_upgrade_rate"]) * 100,
        "target": result.target,
        "target_prices": sorted(result.target.prices.values(), key=lambda m: m.currency) if result.target else [],
        "target_overage": [
            f"{metric} "
            + ", ".join(f"{format(rate.normalize(), 'f')} {cur}" for cur, rate in sorted(rates.items()))
            + " per unit"
            for metric, rates in (result.target.overage_rates.items() if result.target else ())
        ],
        "overage": result.overage,
        **_impact_context(result, months),
    }
    return render(request, "analytics/price_impact.html", context)


@_of_a_migration
def price_impact_csv(request, migration_id: str, months: int):
    text = commands.export_price_impact(migration_id=migration_id, months=months, by=request.user.get_username())
    response = HttpResponse(text, content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="price-impact-{migration_id}-{months}m.csv"'
    return response
