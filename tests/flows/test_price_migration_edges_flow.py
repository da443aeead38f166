"""The edges of a price migration the issue names, on test clocks through the real worker:
who is reported and not moved (in dunning, paused, on an approval-only plan), a trial that converts
after a scheduled change, and a migration whose batch crashes, then resumes, moving everyone once."""

from __future__ import annotations

import pytest

from notifications.models import Notification
from sharedkernel.models import StoredEvent
from sharedkernel.scheduling import run_job
from subscriptions.commands import price_migrations
from subscriptions.commands import subscriptions as subscription_commands
from subscriptions.models import Subscription
from tests.conftest import wait_until_handled
from tests.flows.api import advance, invoices, make_plan, money, settle, two_beats_schedule_price_changes
from tests.flows.test_price_migration_flow import customers_on_clock, scheduled_events

pytestmark = pytest.mark.flow


def subscribe(staff, customer, plan, trial=False) -> str:
    response = staff.post(
        "/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan["id"], "trial": trial}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def migrate(staff, plan, price: str, effective_from: str) -> str:
    version = staff.post(f"/api/v1/plans/{plan['id']}/versions/", {"prices": [money(price)]}, format="json")
    assert version.status_code == 201, version.content
    drafted = staff.post(
        "/api/v1/price-migrations/",
        {"plan": plan["id"], "to_version": version.json()["version"], "effective_from": effective_from},
        format="json",
    )
    assert drafted.status_code == 201, drafted.content
    return drafted.json()["id"]


def notices() -> list[str]:
    return sorted(Notification.objects.filter(template="price_change").values_list("email", flat=True))


def test_in_dunning_paused_or_on_an_approval_only_plan_is_reported_not_moved(staff):
    # given four subscribers: Dee (her renewal declines), Pat, Max on Pro and Eve on Enterprise
    pro = make_plan(staff, "pro", "30.00")
    enterprise = make_plan(staff, "ent", "100.00", tier="enterprise")
    clock, (dee, pat, max_, eve) = customers_on_clock(staff, "2025-01-31T10:00:00Z", ["Dee", "Pat", "Max", "Eve"])
    d, p, m = (subscribe(staff, c, pro) for c in (dee, pat, max_))
    e = subscribe(staff, eve, enterprise)
    wait_until_handled()
    staff.put(f"/api/v1/customers/{dee['id']}/payment-method/", {"token": "pm_card_chargeDeclined"}, format="json")
    # Dee's renewal declines, its three retries too: Billing starts dunning her, her subscription stays active
    for moment in ("2025-02-28T10:00:01Z", "2025-02-28T11:00:00Z", "2025-03-01T10:00:00Z", "2025-03-03T10:00:00Z"):
        advance(staff, clock, moment)
    assert StoredEvent.objects.filter(event_type="billing.DunningStarted", payload__subscription_id=d).count() == 1
    dee_sub = Subscription.objects.get(pk=d)
    assert dee_sub.status == "active" and dee_sub.dunning_since is not None
    # staff pause Pat
    assert staff.post(f"/api/v1/subscriptions/{p}/suspend/", {}, format="json").status_code == 200

    # when both plans get a dearer version and a migration each
    pro_migration = migrate(staff, pro, "40.00", "2025-03-03T00:00:00Z")
    enterprise_migration = migrate(staff, enterprise, "120.00", "2025-03-03T00:00:00Z")

    # then the previews report who stays, and why
    preview = staff.get(f"/api/v1/price-migrations/{pro_migration}/preview/").json()
    assert preview["subscriptions"] == 1
    assert sorted(preview["left_out"], key=lambda r: r["reason"]) == [
        {"subscription": d, "reason": "dunning"},
        {"subscription": p, "reason": "paused"},
    ]
    preview = staff.get(f"/api/v1/price-migrations/{enterprise_migration}/preview/").json()
    assert preview["subscriptions"] == 0
    assert preview["left_out"] == [{"subscription": e, "reason": "approval_only_plan"}]

    # and running them moves only Max: one notice, one scheduled change; the others are counted as left out
    for migration in (pro_migration, enterprise_migration):
        assert staff.post(f"/api/v1/price-migrations/{migration}/start/").status_code == 200
    two_beats_schedule_price_changes()
    pro_state = staff.get(f"/api/v1/price-migrations/{pro_migration}/").json()
    assert pro_state["status"] == "done"
    assert pro_state["counts"] == {"scheduled": 1, "moved": 0, "left_out": 2, "cancelled": 0}
    enterprise_state = staff.get(f"/api/v1/price-migrations/{enterprise_migration}/").json()
    assert enterprise_state["counts"] == {"scheduled": 0, "moved": 0, "left_out": 1, "cancelled": 0}
    assert [len(scheduled_events(s)) for s in (d, p, m, e)] == [0, 0, 1, 0]
    assert notices() == ["max@example.com"]
    for sub in (d, p, e):
        assert staff.get(f"/api/v1/subscriptions/{sub}/").json()["scheduled_price_change"] is None

    # at the next renewal only Max pays the new price; once Dee pays, she is no longer in dunning
    staff.put(f"/api/v1/customers/{dee['id']}/payment-method/", {"token": "pm_card_visa"}, format="json")
    wait_until_handled()
    assert Subscription.objects.get(pk=d).dunning_since is None
    advance(staff, clock, "2025-04-30T10:00:01Z")
    assert invoices(staff, m)[-1]["total"] == money("40.00")
    assert invoices(staff, d)[-1]["total"] == money("30.00")
    assert invoices(staff, e)[-1]["total"] == money("100.00")
    assert Subscription.objects.get(pk=p).plan_version == 1


def test_a_trial_that_converts_after_a_scheduled_change_is_billed_the_new_price(staff, settings):
    # given a 14-day trial on Pro (30.00) and, with 7 days' notice, a migration to 36.00
    settings.PRICE_CHANGE_NOTICE_DAYS = 7
    pro = make_plan(staff, "pro", "30.00", trial_days=14)
    clock, (tia,) = customers_on_clock(staff, "2025-01-01T00:00:00Z", ["Tia"])
    t = subscribe(staff, tia, pro, trial=True)
    wait_until_handled()
    migration = migrate(staff, pro, "36.00", "2025-01-01T00:00:00Z")

    # when it is started: the change lands on the trial's end (the first boundary after the notice)
    preview = staff.get(f"/api/v1/price-migrations/{migration}/preview/").json()
    assert preview["first_effective_at"] == "2025-01-15T00:00:00Z"
    staff.post(f"/api/v1/price-migrations/{migration}/start/")
    run_job("subscriptions.schedule_price_changes")
    settle()
    assert notices() == ["tia@example.com"]
    assert staff.get(f"/api/v1/subscriptions/{t}/").json()["scheduled_price_change"] == {
        "price": money("36.00"),
        "plan_version": 2,
        "effective_at": "2025-01-15T00:00:00Z",
    }

    # then the trial converts and the first invoice bills 36.00 on version 2, once
    advance(staff, clock, "2025-01-15T00:00:01Z")
    [first] = invoices(staff, t)
    assert first["billing_reason"] == "subscription_create" and first["status"] == "paid"
    assert first["lines"][0]["amount"] == money("36.00") and "version 2" in first["lines"][0]["description"]
    sub = Subscription.objects.get(pk=t)
    assert (sub.status, sub.plan_version, str(sub.price.amount)) == ("active", 2, "36.00")
    assert StoredEvent.objects.filter(event_type="subscriptions.PriceChanged", aggregate_id=t).count() == 1
    assert staff.get(f"/api/v1/price-migrations/{migration}/").json()["counts"]["moved"] == 1
    advance(staff, clock, "2025-02-15T00:00:01Z")
    assert [i["total"] for i in invoices(staff, t)] == [money("36.00"), money("36.00")]


def test_a_batch_that_crashes_then_resumes_moves_everyone_exactly_once(staff, settings, monkeypatch):
    # given five subscribers and a rise to 40.00, scheduled two per batch
    settings.PRICE_MIGRATION_BATCH = 2
    pro = make_plan(staff, "pro", "30.00")
    names = ["Ann", "Ben", "Cat", "Dan", "Eli"]
    clock, people = customers_on_clock(staff, "2025-01-31T10:00:00Z", names)
    subs = [subscribe(staff, c, pro) for c in people]
    wait_until_handled()
    migration = migrate(staff, pro, "40.00", "2025-02-01T00:00:00Z")
    staff.post(f"/api/v1/price-migrations/{migration}/start/")

    # when the first batch commits and the second dies before its commit (the worker is killed mid-batch)
    now = _clock_now(clock)
    assert price_migrations.schedule_price_change_batch(migration_id=migration, now=now) == 2
    real_append = subscription_commands.append_batch
    crashes = []

    def crash_once(groups):
        if not crashes:
            crashes.append(1)
            list(groups)  # the events were taken from the aggregates; the rollback drops them
            raise RuntimeError("worker killed mid-batch")
        return real_append(groups)

    monkeypatch.setattr(subscription_commands, "append_batch", crash_once)
    with pytest.raises(RuntimeError):
        price_migrations.schedule_price_change_batch(migration_id=migration, now=now)
    # nothing of the crashed batch was kept: two scheduled, the cursor where the first batch left it
    assert staff.get(f"/api/v1/price-migrations/{migration}/").json()["counts"]["scheduled"] == 2
    assert sum(len(scheduled_events(s)) for s in subs) == 2

    # then beat resumes it — twice, as a second beat would — and everyone is scheduled once, noticed once
    two_beats_schedule_price_changes()
    state = staff.get(f"/api/v1/price-migrations/{migration}/").json()
    assert state["status"] == "done"
    assert state["counts"] == {"scheduled": 5, "moved": 0, "left_out": 0, "cancelled": 0}
    assert [len(scheduled_events(s)) for s in subs] == [1] * 5
    assert notices() == sorted(f"{n.lower()}@example.com" for n in names)

    # and the renewal on the date moves each once: one PriceChanged, one invoice at 40.00
    advance(staff, clock, "2025-02-28T10:00:01Z")
    advance(staff, clock, "2025-03-31T10:00:01Z")
    for sub in subs:
        assert StoredEvent.objects.filter(event_type="subscriptions.PriceChanged", aggregate_id=sub).count() == 1
        assert [i["total"] for i in invoices(staff, sub)] == [money("30.00"), money("30.00"), money("40.00")]
    assert staff.get(f"/api/v1/price-migrations/{migration}/").json()["counts"]["moved"] == 5


def _clock_now(clock):
    from sharedkernel.models import TestClock

    return TestClock.objects.get(pk=clock["id"]).frozen_time


def test_a_customer_who_changes_plan_before_the_date_never_pays_the_new_price(staff):
    # given Pam on Pro (30.00) with a rise to 40.00 scheduled for Mar 31
    pro = make_plan(staff, "pro", "30.00")
    team = make_plan(staff, "team", "50.00")
    clock, (pam,) = customers_on_clock(staff, "2025-01-31T10:00:00Z", ["Pam"])
    s = subscribe(staff, pam, pro)
    wait_until_handled()
    migration = migrate(staff, pro, "40.00", "2025-02-01T00:00:00Z")
    staff.post(f"/api/v1/price-migrations/{migration}/start/")
    run_job("subscriptions.schedule_price_changes")
    settle()
    assert staff.get(f"/api/v1/subscriptions/{s}/").json()["scheduled_price_change"]["effective_at"] == (
        "2025-03-31T10:00:00Z"
    )

    # when she moves to Team before the date
    advance(staff, clock, "2025-03-10T00:00:00Z")
    changed = staff.post(f"/api/v1/subscriptions/{s}/change-plan/", {"plan": team["id"]}, format="json")
    assert changed.status_code == 200, changed.content
    wait_until_handled()

    # then the change is withdrawn (counted as cancelled) and the renewal on the date bills Team, not 40.00
    assert changed.json()["scheduled_price_change"] is None
    [withdrawn] = StoredEvent.objects.filter(event_type="subscriptions.PriceChangeCancelled", aggregate_id=s)
    assert withdrawn.payload["reason"] == "plan_changed"
    assert staff.get(f"/api/v1/price-migrations/{migration}/").json()["counts"]["cancelled"] == 1
    advance(staff, clock, "2025-03-31T10:00:01Z")
    renewal = invoices(staff, s)[-1]
    assert renewal["billing_reason"] == "subscription_cycle" and renewal["total"] == money("50.00")
    assert not StoredEvent.objects.filter(event_type="subscriptions.PriceChanged", aggregate_id=s).exists()
    assert money("40.00") not in [line["amount"] for i in invoices(staff, s) for line in i["lines"]]
