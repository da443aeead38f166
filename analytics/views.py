"""Staff dashboards: MRR and its movements, revenue by period, churn, subscriptions by plan and status,
the at-risk list; every view exportable as CSV."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe

from analytics import charts, commands, queries, reports


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
