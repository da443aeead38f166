"""Analytics' edges that record an event, committed for real (no wrapping test transaction).

Issue 11: every staff CSV export answered 500 (``RuntimeError: Events are appended inside the
transaction that saves their aggregate``) while the wrapped test passed.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from analytics import reports
from analytics.models import Report
from sharedkernel.models import StoredEvent
from sharedkernel.scheduling import run_job
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan
from tests.helpers import staff_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(client):
    client.force_login(staff_user())
    return client


@pytest.fixture
def one_active_subscription(drain):
    pro = plan()
    ada = customer(drain)
    subs.subscribe(customer_id=ada.pk, plan_id=pro.pk, currency="USD", trial=False)
    drain()


def test_every_csv_export_answers_with_its_csv_and_records_data_exported(staff_client, one_active_subscription):
    # given one active subscription, projected
    for view in reports.VIEWS:
        # when staff export each view
        response = staff_client.get(f"/staff/analytics/export/{view}.csv")
        # then they get the CSV as a download
        assert response.status_code == 200, view
        assert response["Content-Type"] == "text/csv"
        assert response["Content-Disposition"] == f'attachment; filename="{view}.csv"'
        header, *rows = response.content.decode().splitlines()
        assert header == ",".join(reports._rows(view)[0])
    subscriptions_csv = staff_client.get("/staff/analytics/export/subscriptions.csv").content.decode()
    assert len(subscriptions_csv.splitlines()) == 2  # header + the one subscription
    # and each export is a committed fact: who took which view, with how many rows
    exported = list(StoredEvent.objects.filter(event_type="analytics.DataExported").order_by("position"))
    assert [e.payload["view"] for e in exported] == [*reports.VIEWS, "subscriptions"]
    assert {e.payload["exported_by"] for e in exported} == {"staff"}
    assert exported[-1].payload["rows"] == 1


def test_an_unknown_export_is_404_and_records_nothing(staff_client):
    assert staff_client.get("/staff/analytics/export/nope.csv").status_code == 404
    assert not StoredEvent.objects.filter(event_type="analytics.DataExported").exists()


def test_the_monthly_report_job_stores_one_report_and_records_report_generated(staff_client, one_active_subscription):
    # when beat runs the job twice in the same month
    assert run_job("analytics.monthly_report", now=timezone.now()) == 1
    assert run_job("analytics.monthly_report", now=timezone.now()) == 0
    # then one report is stored, with one ReportGenerated, and staff can download it
    report = Report.objects.get()
    [generated] = StoredEvent.objects.filter(event_type="analytics.ReportGenerated")
    assert generated.payload["report_id"] == str(report.pk)
    assert generated.payload["month"] == report.month.isoformat()
    download = staff_client.get(f"/admin/analytics/report/{report.pk}/download/")
    assert download.status_code == 200
    assert b"# mrr" in download.content and b"# revenue-month" in download.content and b"# churn" in download.content


def test_the_mrr_snapshot_job_writes_snapshots(one_active_subscription):
    from analytics.models import MrrSnapshot

    assert run_job("analytics.snapshot_mrr", now=timezone.now()) > 0
    assert MrrSnapshot.objects.filter(currency="USD").exists()
