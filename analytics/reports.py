"""CSV of every view, and of the monthly report (what staff take out; commands.py records that they did)."""

from __future__ import annotations

import csv
import io

from analytics import queries
from analytics.models import SubscriptionView


def _rows(view: str) -> tuple[list[str], list[list]]:
    if view == "mrr":
        header = ["currency", "day", "mrr", "new", "expansion", "contraction", "churned", "reactivation"]
        rows = [
            [c, p.day, p.mrr.amount, *[p.movements[k].amount if k in p.movements else 0 for k in header[3:]]]
            for c in queries.currencies()
            for p in queries.mrr_series(c)
        ]
        return header, rows
    if view in ("revenue-month", "revenue-quarter", "revenue-year"):
        return (
            ["period", "plan", "currency", "revenue", "refunds"],
            [
                [r["period"], r["plan"], r["currency"], r["revenue"].amount, r["refunds"].amount]
                for r in queries.revenue(view.split("-")[1])
            ],
        )
    if view == "churn":
        return (
            ["month", "active_at_start", "cancelled", "churn_rate"],
            [[c.month, c.active_at_start, c.cancelled, f"{c.rate:.4f}"] for c in queries.churn(months=120)],
        )
    if view == "subscriptions":
        return (
            [
                "subscription",
                "customer",
                "plan",
                "tier",
                "status",
                "currency",
                "monthly_price",
                "mrr",
                "started",
                "cancelled",
                "churn_risk",
            ],
            [
                [
                    v.subscription_id,
                    v.customer_id,
                    v.plan_name,
                    v.tier,
                    v.status,
                    v.currency,
                    v.monthly_price.amount,
                    v.mrr.amount,
                    v.started_at.date(),
                    v.cancelled_at.date() if v.cancelled_at else "",
                    v.churn_risk,
                ]
                for v in SubscriptionView.objects.order_by("started_at")
            ],
        )
    raise KeyError(view)


VIEWS = ["mrr", "revenue-month", "revenue-quarter", "revenue-year", "churn", "subscriptions"]


def to_csv(view: str) -> tuple[str, int]:
    header, rows = _rows(view)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue(), len(rows)


IMPACT_HEADER = [
    "kind",
    "month",
    "currency",
    "actual_revenue",
    "proposed_revenue",
    "actual_mrr",
    "proposed_mrr",
    "invoices",
    "actual_invoice_total",
    "proposed_invoice_total",
]


def impact_csv(impact) -> tuple[str, int]:
    """A price migration's impact (``analytics.impact.Impact``): the replayed months, then the projection."""
    invoices = {(r["month"], r["currency"]): r for r in impact.invoices}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(IMPACT_HEADER)
    count = 0
    for kind, rows in (("history", impact.months), ("projection", impact.projection)):
        for r in rows:
            inv = invoices.get((r["month"], r["currency"])) if kind == "history" else None
            writer.writerow(
                [
                    kind,
                    r["month"],
                    r["currency"],
                    *(r[k].amount for k in IMPACT_HEADER[3:7]),
                    *(
                        (inv["count"], inv["actual_total"].amount, inv["proposed_total"].amount)
                        if inv
                        else ("", "", "")
                    ),
                ]
            )
            count += 1
    return out.getvalue(), count


def monthly_csv() -> tuple[str, int]:
    """MRR movements, revenue and churn in one CSV, and how many rows it holds."""
    parts, count = [], 0
    for view in ("mrr", "revenue-month", "churn"):
        text, rows = to_csv(view)
        parts.append(f"# {view}\n{text}")
        count += rows
    return "\n".join(parts), count
