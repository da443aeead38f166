"""CSV exports of every view, and the monthly report."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime

from django.utils import timezone

from analytics import events as ev
from analytics import queries
from analytics.models import Report, SubscriptionView
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.correlation import current_cause
from sharedkernel.eventstore import append_batch


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


def export(view: str, *, by: str) -> str:
    """CSV of a view; DataExported says who took what."""
    text, count = to_csv(view)
    export_id = str(uuid.uuid4())
    append_batch(
        [
            (
                current_cause(),
                [
                    RecordedEvent(
                        ev.DataExported(export_id=export_id, view=view, rows=count, exported_by=by),
                        timezone.now(),
                        "Export",
                        export_id,
                        1,
                        None,
                    )
                ],
            )
        ]
    )
    return text


def monthly_report(month: date, *, at: datetime) -> Report:
    """MRR movements, revenue and churn of ``month`` in one CSV (ReportGenerated)."""
    parts, count = [], 0
    for view in ("mrr", "revenue-month", "churn"):
        text, rows = to_csv(view)
        parts.append(f"# {view}\n{text}")
        count += rows
    report, _ = Report.objects.update_or_create(month=month, defaults={"generated_at": at, "csv": "\n".join(parts)})
    append_batch(
        [
            (
                current_cause(),
                [
                    RecordedEvent(
                        ev.ReportGenerated(report_id=str(report.pk), month=month.isoformat(), rows=count),
                        at,
                        "Report",
                        str(report.pk),
                        1,
                        None,
                    )
                ],
            )
        ]
    )
    return report
