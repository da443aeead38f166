"""Application services of Analytics: it owns no aggregate, but records what staff took out of it.

Each is one ``@command`` transaction, so the fact is stored with what it describes: a CSV export
with its DataExported, a stored monthly report with its ReportGenerated.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from analytics import events as ev
from analytics import reports
from analytics.models import Report
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.clock import Clock, SystemClock
from sharedkernel.commands import command
from sharedkernel.eventstore import append


def _record_export(*, view: str, rows: int, by: str, at: datetime) -> None:
    export_id = str(uuid.uuid4())
    append(
        [
            RecordedEvent(
                ev.DataExported(export_id=export_id, view=view, rows=rows, exported_by=by),
                at,
                "Export",
                export_id,
                1,
                None,
            )
        ]
    )


#: the same record, as a transaction of its own (the impact export's replay runs before it, outside)
_committed_export = command(
    aggregate="Export", records=("analytics.DataExported",), name="analytics.record_price_impact_export"
)(_record_export)


@command(aggregate="Export", records=("analytics.DataExported",))
def export_view(*, view: str, by: str, clock: Clock | None = None) -> str:
    """ExportData: the CSV of one dashboard view (``reports.VIEWS``), recorded as DataExported
    (who, which view, how many rows). An unknown view is a KeyError: the edge answers 404."""
    text, count = reports.to_csv(view)
    _record_export(view=view, rows=count, by=by, at=(clock or SystemClock()).now())
    return text


def export_price_impact(*, migration_id: str, months: int, by: str, clock: Clock | None = None) -> str:
    """ExportData for a price migration's impact: the replay (read-only, outside any transaction: it
    reads the event store for as long as it takes) as CSV, then DataExported in its own transaction
    (view ``price-impact/<migration>/<months>m``). An unknown migration is ``impact.UnknownMigration``
    and records nothing."""
    from analytics import impact

    at = (clock or SystemClock()).now()
    text, count = reports.impact_csv(impact.impact_of(migration_id, now=at, months=months))
    _committed_export(view=f"price-impact/{migration_id}/{months}m", rows=count, by=by, at=at)
    return text


@command(aggregate="Report", records=("analytics.ReportGenerated",))
def generate_monthly_report(*, month: date, at: datetime) -> Report:
    """GenerateReport: MRR movements, revenue and churn of ``month`` stored as one CSV for the admin,
    recorded as ReportGenerated. Generating a month again replaces its stored CSV."""
    text, count = reports.monthly_csv()
    report, _ = Report.objects.update_or_create(month=month, defaults={"generated_at": at, "csv": text})
    append(
        [
            RecordedEvent(
                ev.ReportGenerated(report_id=str(report.pk), month=month.isoformat(), rows=count),
                at,
                "Report",
                str(report.pk),
                1,
                None,
            )
        ]
    )
    return report
