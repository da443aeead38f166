"""Time-driven work of Analytics (real time only; test clocks have no reports).

analytics.snapshot_mrr    daily MRR snapshots per currency, from the movements
analytics.monthly_report  on the 1st: last month's report, stored for the admin (ReportGenerated)
"""

from __future__ import annotations

from datetime import datetime

from dateutil.relativedelta import relativedelta
from django.db import transaction

from analytics import commands, queries
from analytics.models import Report
from sharedkernel.scheduling import scheduled_job


@scheduled_job("analytics.snapshot_mrr", next_due=lambda scope: None)
def snapshot_mrr(now: datetime, test_clock_id: str | None) -> int:
    if test_clock_id:
        return 0
    with transaction.atomic():
        return queries.write_snapshots()


@scheduled_job("analytics.monthly_report", next_due=lambda scope: None)
def monthly_report(now: datetime, test_clock_id: str | None) -> int:
    if test_clock_id:
        return 0
    month = now.date().replace(day=1) - relativedelta(months=1)
    if Report.objects.filter(month=month).exists():
        return 0
    commands.generate_monthly_report(month=month, at=now)
    return 1
