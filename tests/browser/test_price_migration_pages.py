"""A price migration as staff and the customer see it, in a real browser with the real worker:
the migration's admin page (preview, progress), the plan's versions, the customer's coming price."""

from __future__ import annotations

from pathlib import Path

import pytest

from sharedkernel.scheduling import run_job
from sharedkernel.values import Money
from subscriptions import commands as subs
from tests.browser.conftest import customer_with_login, log_in, shot
from tests.conftest import wait_until_handled
from tests.helpers import staff_user

pytestmark = [pytest.mark.browser, pytest.mark.flow]

SHOTS = Path("/tmp/shots/prices")


def _shot(page, name):
    shot(page, f"prices-{name}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_migration_admin_plan_versions_and_the_customers_coming_price(flow, page, live_server):
    plan = subs.define_plan(
        code="pro-m", name="Pro", tier="professional", interval="month", trial_days=0, prices=[Money("30.00", "USD")]
    )
    user, customer = customer_with_login("grace", "Grace Hopper", "grace@example.com")
    sub = subs.subscribe(customer_id=str(customer.id), plan_id=str(plan.pk))
    wait_until_handled()
    subs.revise_plan(
        plan_id=str(plan.pk),
        name="Pro",
        trial_days=0,
        prices=[Money("36.00", "USD")],
        features=[],
        included_usage={},
        overage_rates={},
    )
    from django.utils import timezone

    migration = subs.draft_price_migration(plan_id=str(plan.pk), to_version=2, effective_from=timezone.now())
    subs.start_price_migration(migration_id=migration.pk)
    run_job("subscriptions.schedule_price_changes")
    wait_until_handled()

    # staff: the migration page with its progress, and the plan's versions
    log_in(page, live_server, staff_user("boss"))
    page.goto(f"/admin/subscriptions/pricemigration/{migration.pk}/change/")
    assert "scheduled 1 · moved 0 · left out 0 · cancelled 0" in page.inner_text(".migration-progress")
    _shot(page, "admin-migration")
    # its impact, one click away: the replay's tables and charts, and the stated assumptions
    page.click("a.impact-link")
    assert page.inner_text("h1") == "Price migration impact"
    first = page.inner_text("table.impact-months tbody tr:last-child")
    assert "30.00 USD" in first and "36.00 USD" in first  # this month's MRR: actual 30, proposed 36
    assert page.locator(".chart svg").count() == 3
    assert "Monthly churn rate" in page.inner_text("dl.assumptions")
    _shot(page, "impact")
    page.goto(f"/admin/subscriptions/pricemigration/{migration.pk}/change/")
    page.goto("/admin/subscriptions/pricemigration/")
    _shot(page, "admin-migrations")
    page.goto(f"/admin/subscriptions/plan/{plan.pk}/change/")
    assert "36.00" in page.inner_text("table.plan-versions")
    _shot(page, "admin-plan-versions")

    # the customer: the coming price and its date on their subscriptions page
    page.context.clear_cookies()
    log_in(page, live_server, user)
    page.goto("/app/")
    coming = page.inner_text(f'[data-subscription="{sub.pk}"] .coming-price')
    assert "36.00" in coming and "cancel or change plan" in coming
    _shot(page, "customer-dashboard")
