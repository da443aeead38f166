"""Dashboards, exports and the monthly report, on demo data (months of history made by the real commands)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from analytics.models import Report
from config.demo import seed
from sharedkernel.models import StoredEvent
from sharedkernel.scheduling import run_job
from tests.helpers import api_client, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(db):
    seed(months=4, customers=14, log=lambda *a: None)


def test_dashboard_shows_charts_and_tables_to_staff_only(client, admin_client, history):
    assert client.get("/staff/analytics/").status_code == 302  # to the login
    page = admin_client.get("/staff/analytics/?currency=USD").content.decode()
    assert page.count("<svg") >= 3  # MRR, movements, revenue (and churn) as pictures
    for table in ("movements", "revenue", "churn", "by-plan", "at-risk"):
        assert f'class="data {table}"' in page
    assert "MRR now" in page and "USD" in page


def test_csv_exports_are_recorded(admin_client, history):
    response = admin_client.get("/staff/analytics/export/mrr.csv")
    assert response.status_code == 200 and response.content.decode().startswith("currency,day,mrr,new")
    assert admin_client.get("/staff/analytics/export/nope.csv").status_code == 404
    exported = StoredEvent.objects.get(event_type="analytics.DataExported")
    assert exported.payload["view"] == "mrr" and exported.payload["rows"] > 0


def test_monthly_report_is_stored_once_and_downloadable(admin_client, history):
    assert Report.objects.count() >= 3  # the demo's months went through beat's jobs too
    Report.objects.all().delete()
    before = StoredEvent.objects.filter(event_type="analytics.ReportGenerated").count()
    assert run_job("analytics.monthly_report", now=timezone.now()) == 1
    assert run_job("analytics.monthly_report", now=timezone.now()) == 0
    report = Report.objects.get()
    assert StoredEvent.objects.filter(event_type="analytics.ReportGenerated").count() == before + 1
    download = admin_client.get(f"/admin/analytics/report/{report.pk}/download/")
    assert download.status_code == 200 and b"# mrr" in download.content and b"# churn" in download.content
    assert run_job("analytics.snapshot_mrr", now=timezone.now()) > 0


def test_analytics_api_is_staff_only_and_validates(history):
    staff = api_client(staff_user())
    assert staff.get("/api/v1/analytics/mrr/").json()["results"]
    assert staff.get("/api/v1/analytics/revenue/", {"group": "quarter"}).status_code == 200
    assert staff.get("/api/v1/analytics/revenue/", {"group": "week"}).status_code == 400
    assert staff.get("/api/v1/analytics/churn/").status_code == 200
    assert api_client().get("/api/v1/analytics/mrr/").status_code == 401
