"""GET /subscriptions/{id}/upcoming-invoice/ follows the subscription's own period rule."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps

from billing.models import BilledSubscription
from sharedkernel.models import StoredEvent, TestClock
from sharedkernel.scheduling import advance_test_clock
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan
from tests.conftest import at
from tests.helpers import api_client, staff_user

pytestmark = pytest.mark.django_db(transaction=True)


def _subscribed(drain, start, **plan_terms):
    clock = TestClock.objects.create(name="anchors", frozen_time=at(start))
    c = customer(drain, country="GB", region="", test_clock_id=str(clock.pk))
    sub = subs.subscribe(
        customer_id=str(c.id), plan_id=str(plan(**plan_terms).id), trial=plan_terms.get("trial_days", 0) > 0
    )
    drain()
    return str(clock.pk), str(sub.id), api_client(staff_user())


def upcoming(client, sub_id) -> tuple[str, str]:
    response = client.get(f"/api/v1/subscriptions/{sub_id}/upcoming-invoice/")
    assert response.status_code == 200, response.content
    body = response.json()
    return body["period_start"], body["period_end"]


def renewed_periods(sub_id) -> list[tuple[str, str]]:
    return [
        (p["period"]["start"], p["period"]["end"])
        for p in StoredEvent.objects.filter(aggregate_id=sub_id, event_type="subscriptions.SubscriptionRenewed")
        .order_by("position")
        .values_list("payload", flat=True)
    ]


def test_a_subscription_started_on_january_31_is_next_invoiced_to_march_31_then_april_30(drain):
    # given a monthly subscription started Jan 31
    clock, sub, client = _subscribed(drain, "2025-01-31 10:00")
    # then in February the next invoice covers Feb 28 – Mar 31
    advance_test_clock(clock, at("2025-02-10 00:00"))
    assert upcoming(client, sub) == ("2025-02-28T10:00:00Z", "2025-03-31T10:00:00Z")

    # when it renews on Feb 28, in March the next one covers Mar 31 – Apr 30
    advance_test_clock(clock, at("2025-03-05 00:00"))
    assert upcoming(client, sub) == ("2025-03-31T10:00:00Z", "2025-04-30T10:00:00Z")

    # and that is the period the renewal then bills
    advance_test_clock(clock, at("2025-04-01 00:00"))
    assert renewed_periods(sub)[-1] == ("2025-03-31T10:00:00+00:00", "2025-04-30T10:00:00+00:00")


def test_an_annual_plan_started_on_february_29_is_next_invoiced_by_its_anchor(drain):
    clock, sub, client = _subscribed(drain, "2024-02-29 09:00", code="annual", price="300.00 USD", interval="year")
    assert upcoming(client, sub) == ("2025-02-28T09:00:00Z", "2026-02-28T09:00:00Z")

    advance_test_clock(clock, at("2026-03-01 00:00"))  # renewed on Feb 28 of 2025 and 2026
    assert upcoming(client, sub) == ("2027-02-28T09:00:00Z", "2028-02-29T09:00:00Z")  # not Feb 28, 2028

    advance_test_clock(clock, at("2027-03-01 00:00"))  # and of 2027
    assert upcoming(client, sub) == ("2028-02-29T09:00:00Z", "2029-02-28T09:00:00Z")


def test_a_trial_is_next_invoiced_for_its_first_period(drain):
    _, sub, client = _subscribed(drain, "2025-01-17 10:00", code="trial", trial_days=14)
    assert upcoming(client, sub) == ("2025-01-31T10:00:00Z", "2025-02-28T10:00:00Z")


def _without_anchors(payload: dict) -> dict:
    return {k: {f: v for f, v in p.items() if f != "anchor"} if isinstance(p, dict) else p for k, p in payload.items()}


def test_rows_from_before_the_anchor_was_published_get_it_from_the_history(drain):
    # given a converted trial (anchor: its end) that renewed, its row left without an anchor
    clock, sub, client = _subscribed(drain, "2025-01-17 10:00", code="trial", trial_days=14)
    advance_test_clock(clock, at("2025-03-01 00:00"))
    renewed = StoredEvent.objects.get(aggregate_id=sub, event_type="subscriptions.SubscriptionRenewed")
    assert renewed.payload["period"]["anchor"] == "2025-01-31T10:00:00+00:00"
    BilledSubscription.objects.filter(pk=sub).update(billing_anchor=None)
    migration = importlib.import_module("billing.migrations.0004_project_billed_subscription_anchor")
    history = StoredEvent.objects.filter(aggregate_id=sub, event_type__in=migration.GRID_EVENTS).order_by("position")

    # when the backfill reads the history, as published now and as stored before anchors were published
    migration.backfill(django_apps, None)
    legacy = [migration._anchor(e.event_type, _without_anchors(e.payload)) for e in history]

    # then both find the trial's end, and the upcoming invoice keeps to the month end
    assert [a for a in legacy if a][-1] == "2025-01-31T10:00:00+00:00"
    assert BilledSubscription.objects.get(pk=sub).billing_anchor == at("2025-01-31 10:00")
    assert upcoming(client, sub) == ("2025-03-31T10:00:00Z", "2025-04-30T10:00:00Z")
