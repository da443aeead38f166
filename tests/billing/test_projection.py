"""Billing's and Analytics' copies of a subscription apply its events in stored order, each once.

A command may record several events at one aggregate version: a trial that converts records
TrialExpired and SubscriptionActivated, a trial cancelled at its expiry TrialExpired and
SubscriptionCancelled. Comparing versions dropped the second of each pair.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.forms.models import model_to_dict

from analytics.models import MrrMovement, SubscriptionView
from billing.acl.subscriptions import SubscriptionFacts
from billing.models import BilledSubscription
from billing.policies import _project
from sharedkernel.bus import handler_transaction, run_deliveries
from sharedkernel.eventstore import read
from sharedkernel.models import EventDelivery, StoredEvent, TestClock
from sharedkernel.scheduling import advance_test_clock
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan
from tests.conftest import at
from tests.helpers import api_client, staff_user

pytestmark = pytest.mark.django_db(transaction=True)

START = at("2025-01-31 10:00")
TRIAL_END = START + timedelta(days=14)


def _trial(drain, *, card="pm_card_visa"):
    clock = TestClock.objects.create(name="projection", frozen_time=START)
    pro, team = plan("pro", trial_days=14), plan("team", price="60.00 USD")
    c = customer(drain, card=card, country="GB", region="", test_clock_id=str(clock.pk))
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id), trial=True)
    drain()
    return clock, sub, team


def _versions(sub, *types):
    return list(
        StoredEvent.objects.filter(aggregate_id=str(sub.id), event_type__in=types)
        .order_by("position")
        .values_list("event_type", "aggregate_version")
    )


def test_a_converted_trial_has_the_active_period_in_billing_and_its_proration_preview_answers(drain):
    # given a trial whose customer has a card
    clock, sub, team = _trial(drain)

    # when the trial runs out
    advance_test_clock(str(clock.pk), TRIAL_END + timedelta(days=1))

    # then TrialExpired and SubscriptionActivated share a version, and Billing applied both
    expired, activated = _versions(sub, "subscriptions.TrialExpired", "subscriptions.SubscriptionActivated")
    assert expired[1] == activated[1]
    row = BilledSubscription.objects.get(pk=sub.id)
    assert row.status == "active"
    assert (row.period_start, row.period_end) == (TRIAL_END, at("2025-03-14 10:00"))
    response = api_client(staff_user()).get(f"/api/v1/subscriptions/{sub.id}/proration-preview/", {"plan": team.id})
    assert response.status_code == 200, response.content
    body = response.json()
    # 27 of the period's 28 days left: −30.00 × 27/28 and 60.00 × 27/28
    assert [line["amount"]["amount"] for line in body["lines"]] == ["-28.93", "57.86"]
    assert body["net"]["amount"] == "28.93"


def test_a_trial_cancelled_at_its_expiry_is_cancelled_in_analytics_and_on_the_dashboard(drain, client):
    # given a trial scheduled to cancel when it ends
    clock, sub, _ = _trial(drain, card=None)
    subs.cancel_subscription(subscription_id=str(sub.id), at_period_end=True, reason="just looking")
    drain()

    # when the trial runs out
    advance_test_clock(str(clock.pk), TRIAL_END + timedelta(hours=1))

    # then TrialExpired and SubscriptionCancelled share a version, and Analytics applied both
    expired, cancelled = _versions(sub, "subscriptions.TrialExpired", "subscriptions.SubscriptionCancelled")
    assert expired[1] == cancelled[1]
    view = SubscriptionView.objects.get(pk=sub.id)
    assert (view.status, view.cancelled_at) == ("cancelled", TRIAL_END)
    assert BilledSubscription.objects.get(pk=sub.id).status == "cancelled"
    client.force_login(staff_user())
    page = client.get("/staff/analytics/")
    assert page.status_code == 200
    assert [(r["plan_name"], r["status"], r["n"]) for r in page.context["by_plan"]] == [("Pro", "cancelled", 1)]


def _analytics_rows():
    views = [model_to_dict(v) for v in SubscriptionView.objects.order_by("pk")]
    movements = list(
        MrrMovement.objects.order_by("event_position", "kind").values_list(
            "day", "currency", "kind", "amount_minor", "subscription_id", "event_position"
        )
    )
    return views, movements


def test_a_duplicate_delivery_changes_neither_copy_and_a_replay_gives_the_same_rows(drain):
    # given a converted trial that then changed plan, in both copies
    clock, sub, team = _trial(drain)
    advance_test_clock(str(clock.pk), TRIAL_END + timedelta(days=1))
    subs.change_plan(subscription_id=str(sub.id), plan_id=str(team.id))
    drain()
    billed = model_to_dict(BilledSubscription.objects.get(pk=sub.id))
    analytics = _analytics_rows()
    assert billed["plan_name"] == "Team" and billed["status"] == "active"
    assert analytics[0][0]["plan_name"] == "Team" and analytics[0][0]["status"] == "active"

    # when Billing's copy is handed the subscription's events again, out of order
    history = list(read(aggregate_id=str(sub.id)))
    with handler_transaction():
        _project(
            [
                (e, SubscriptionFacts.from_payload(e.event_type, e.payload))
                for e in reversed(history)
                if e.event_type.startswith("subscriptions.Subscription") or e.name in ("PlanChanged", "TrialExpired")
            ]
        )
    # and the bus delivers Analytics' and Billing's deliveries of them once more
    for handler in ("analytics.project_subscriptions", "billing.project_billed_subscriptions"):
        done = EventDelivery.objects.filter(handler=handler, event__aggregate_id=str(sub.id)).values_list(
            "pk", flat=True
        )
        assert done and run_deliveries(handler, list(done)) == 0
    # and Analytics' projections are replayed over the rows they built
    call_command("replay_events", "--handler", "analytics.project_subscriptions", "--no-progress")

    # then nothing changed
    assert model_to_dict(BilledSubscription.objects.get(pk=sub.id)) == billed
    assert _analytics_rows() == analytics

    # and a rebuild from the event store gives the same rows
    call_command("replay_events", "--context", "analytics", "--reset", "--no-progress")
    assert _analytics_rows() == analytics


def test_the_migration_repairs_a_row_left_on_the_trial_period_by_the_version_rule(drain):
    # given a converted trial whose Billing copy missed SubscriptionActivated (as before the fix)
    clock, sub, _ = _trial(drain)
    advance_test_clock(str(clock.pk), TRIAL_END + timedelta(days=1))
    created = StoredEvent.objects.get(aggregate_id=str(sub.id), event_type="subscriptions.SubscriptionCreated")
    BilledSubscription.objects.filter(pk=sub.id).update(
        status="trialing", period_start=START, period_end=TRIAL_END, source_version=4, source_position=0
    )

    # when the migration's backfill runs
    migration = importlib.import_module("billing.migrations.0003_project_billed_subscription_position")
    migration.reproject(django_apps, None)

    # then the row has the active period and stands at the subscription's last event
    row = BilledSubscription.objects.get(pk=sub.id)
    assert (row.status, row.period_start, row.period_end) == ("active", TRIAL_END, at("2025-03-14 10:00"))
    last = StoredEvent.objects.filter(aggregate_id=str(sub.id)).order_by("position").last()
    assert row.source_position == last.position > created.position
