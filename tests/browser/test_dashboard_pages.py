"""The staff dashboard on demo data, in a real browser."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from config.demo import seed
from tests.browser.conftest import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_dashboard_shows_months_of_history(page, live_server):
    seed(months=6, customers=24, log=lambda *a: None)
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.goto("/staff/analytics/?currency=USD")
    assert page.locator(".chart svg").count() >= 3
    assert page.locator("table.movements tbody tr").count() >= 5  # months of MRR movements
    assert page.locator("table.revenue tbody tr").count() >= 5
    shot(page, "analytics-01-dashboard")
    page.goto("/staff/analytics/?currency=USD&group=quarter")
    assert page.locator("table.revenue tbody tr").count() >= 2
