"""The staff impact page of a price migration (served by Analytics, linked from the migration's admin page):
the scripted history of test_impact.py, as staff read it and export it."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from analytics.models import CustomerName
from sharedkernel.models import StoredEvent
from tests.analytics.test_impact import MIGRATION, NOW, script_history
from tests.helpers import staff_user

PAGE = f"/staff/analytics/price-migrations/{MIGRATION}/impact/"
CSV = f"/staff/analytics/price-migrations/{MIGRATION}/impact.csv"


@pytest.fixture(autouse=True)
def edges_now(monkeypatch):
    """The page reads the system clock: keep the history's months in its window whatever day it is."""
    from sharedkernel.clock import SystemClock

    monkeypatch.setattr(SystemClock, "now", lambda self: NOW)


@pytest.fixture
def history():
    return script_history()


@pytest.fixture
def staff_client(client):
    client.force_login(staff_user())
    return client


def cells(html: str, table: str) -> list[list[str]]:
    """The body rows of ``<table class="data {table}">`` as lists of cell texts."""
    import re

    body = html.split(f'class="data {table}"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [
        [re.sub(r"<[^>]+>", " ", c).split() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
        for row in rows
    ]


@pytest.mark.django_db
def test_the_page_shows_actual_against_proposed_the_customers_overage_and_the_assumptions(staff_client, history):
    # given the customer who rises most is a known customer
    a_customer = history["A"][1]
    CustomerName.objects.create(customer_id=a_customer, name="Ada Lovelace", email="ada@example.com")

    # when staff open the page over 12 months
    response = staff_client.get(f"{PAGE}?months=12")

    # then the months of the history are in the table, actual against proposed
    assert response.status_code == 200
    html = response.content.decode()
    months = cells(html, "impact-months")
    assert len(months) == 12
    assert [" ".join(sum(row, [])) for row in months[:3]] == [
        "2026-01 3 30.00 USD 36.00 USD +6.00 USD 30.00 USD 36.00 USD 30.00 USD 36.00 USD",
        "2026-02 3 32.00 USD 50.00 USD +18.00 USD 32.00 USD 50.00 USD 20.00 USD 24.00 USD",
        "2026-03 2 20.00 USD 30.00 USD +10.00 USD 20.00 USD 30.00 USD 20.00 USD 24.00 USD",
    ]
    # as charts drawn on the server (no script from anywhere)
    assert html.count("<svg") == 3 and "<script src" not in html
    # the projection: 12 months, with the history's own churn stated (1 cancellation over 23 subscription-months)
    assert len(cells(html, "impact-projection")) == 12
    assert "Monthly churn rate: 4.35 %" in html and "1 cancellation(s) and 0 upgrade(s) over 23" in html
    # whose bill rises most, by name
    customers = [" ".join(sum(row, [])) for row in cells(html, "impact-customers")]
    # (A 32.00 → 50.00 is +56.25 %, B +40 %, C +20 %)
    assert customers[0] == "Ada Lovelace ada@example.com 32.00 USD 50.00 USD +18.00 USD +56.3 %"
    assert len(customers) == 3
    # usage overage under the new included quantities
    assert [" ".join(sum(row, [])) for row in cells(html, "impact-overage")] == ["api USD 2.00 USD 100 20.00 USD"]
    # the proposed terms and the way back to the migration
    assert "version 2" in html and "12.00 USD" in html and "50 api" in html and "api 0.2 USD per unit" in html
    assert f"/admin/subscriptions/pricemigration/{MIGRATION}/change/" in html


@pytest.mark.django_db
def test_the_months_selector_replays_fewer_months(staff_client, history):
    html = staff_client.get(f"{PAGE}?months=3").content.decode()

    # (the history is in early 2026; three months back from now hold none of its invoices)
    assert len(cells(html, "impact-months")) == 3
    assert '<a href="?months=3" class="current">3</a>' in html


@pytest.mark.django_db
@pytest.mark.parametrize("months", ["0", "25", "x", "-1", "1.5"])
def test_bad_months_is_a_400_page_that_says_why(staff_client, history, months):
    response = staff_client.get(f"{PAGE}?months={months}")

    assert response.status_code == 400
    html = response.content.decode()
    assert "months must be a whole number from 1 to 24" in html and "Show the last 6 months" in html


@pytest.mark.django_db
def test_an_unknown_migration_is_404_and_customers_are_sent_to_log_in(client, staff_client, history):
    assert staff_client.get(f"/staff/analytics/price-migrations/{uuid.uuid4()}/impact/").status_code == 404

    client.logout()
    response = client.get(PAGE)
    assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_the_csv_export_holds_the_months_and_the_projection_and_is_recorded(client, history):
    client.force_login(staff_user("boss"))

    # when staff download the CSV of 12 months
    response = client.get(f"{CSV}?months=12")

    # then it holds the replayed months (with the invoice totals), then the projection
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == f'attachment; filename="price-impact-{MIGRATION}-12m.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 24
    assert rows[1] == {
        "kind": "history",
        "month": "2026-02",
        "currency": "USD",
        "actual_revenue": "32.00",
        "proposed_revenue": "50.00",
        "actual_mrr": "20.00",
        "proposed_mrr": "24.00",
        "invoices": "3",
        "actual_invoice_total": "32.00",
        "proposed_invoice_total": "50.00",
    }
    assert [r["kind"] for r in rows] == ["history"] * 12 + ["projection"] * 12
    assert rows[12]["month"] == "2027-01" and rows[12]["invoices"] == ""
    # and the export is a committed fact
    [exported] = StoredEvent.objects.filter(event_type="analytics.DataExported")
    assert exported.payload["view"] == f"price-impact/{MIGRATION}/12m"
    assert (exported.payload["rows"], exported.payload["exported_by"]) == (24, "boss")

    # a bad request exports and records nothing
    assert client.get(f"{CSV}?months=99").status_code == 400
    assert client.get(f"/staff/analytics/price-migrations/{uuid.uuid4()}/impact.csv").status_code == 404
    assert StoredEvent.objects.filter(event_type="analytics.DataExported").count() == 1
