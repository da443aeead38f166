"""Plan versions and price migrations through the API, committed for real (no wrapping transaction)."""

from __future__ import annotations

import pytest

from sharedkernel.models import StoredEvent
from tests.helpers import USD_PLAN, api_client, staff_user
from tests.subscriptions.test_edges_committed import with_card

pytestmark = pytest.mark.django_db(transaction=True)

V2 = {
    "prices": [{"amount": "59.00", "currency": "USD"}],
    "included_usage": {"api_calls": 2000},
    "overage_rates": {"api_calls": [{"amount": "0.02", "currency": "USD"}]},
    "trial_days": 7,
    "features": ["SSO"],
}


def test_api_plan_versions_new_subscriptions_get_the_current_one(staff, drain):
    # given a plan and a subscriber on its first version
    plan_id = staff.post("/api/v1/plans/", {**USD_PLAN, "code": "team-v"}, format="json").json()["id"]
    customer = staff.post(
        "/api/v1/customers/", {"name": "Ada", "email": "ada-v@example.com", "currency": "USD", "country": "GB"}
    ).json()
    drain()
    with_card(customer["id"], drain)
    first = staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan_id}, format="json").json()
    drain()

    # when staff publish version 2
    created = staff.post(f"/api/v1/plans/{plan_id}/versions/", V2, format="json")

    # then it is listed with its terms, the old subscriber stays on 1, a new one gets 2
    assert created.status_code == 201, created.content
    assert created.json()["version"] == 2 and created.json()["prices"] == V2["prices"]
    versions = api_client().get(f"/api/v1/plans/{plan_id}/versions/").json()
    assert [(v["version"], v["prices"][0]["amount"], v["trial_days"]) for v in versions] == [
        (1, "49.00", 14),
        (2, "59.00", 7),
    ]
    assert versions[1]["included_usage"] == {"api_calls": 2000} and versions[1]["current_from"]
    old = staff.get(f"/api/v1/subscriptions/{first['id']}/").json()
    assert (old["plan_version"], old["price"]["amount"], old["scheduled_price_change"]) == (1, "49.00", None)
    other = staff.post(
        "/api/v1/customers/", {"name": "Bo", "email": "bo-v@example.com", "currency": "USD", "country": "GB"}
    )
    drain()
    second = staff.post(
        "/api/v1/subscriptions/", {"customer": other.json()["id"], "plan": plan_id}, format="json"
    ).json()
    assert (second["plan_version"], second["price"]["amount"]) == (2, "59.00")
    updated = StoredEvent.objects.get(event_type="subscriptions.PlanUpdated", aggregate_id=plan_id)
    assert updated.payload["version"] == 2 and updated.payload["prices"] == V2["prices"]

    # bad input: a 400 in the error shape, and no version 3
    bad = staff.post(f"/api/v1/plans/{plan_id}/versions/", {"prices": []}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"]
    assert len(api_client().get(f"/api/v1/plans/{plan_id}/versions/").json()) == 2
    # customers cannot publish versions
    assert api_client().post(f"/api/v1/plans/{plan_id}/versions/", V2, format="json").status_code in (401, 403)


def _subscriber(staff, drain, plan_id, name):
    customer = staff.post(
        "/api/v1/customers/", {"name": name, "email": f"{name}@example.com", "currency": "USD", "country": "GB"}
    ).json()
    drain()
    with_card(customer["id"], drain)
    sub = staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan_id}, format="json").json()
    drain()
    return sub["id"]


def test_a_cancelled_migration_withdraws_what_it_scheduled(staff, drain, client):
    from sharedkernel.scheduling import run_job

    # given two subscribers, one paused by staff, and a cut to 39.00 in version 2
    plan_id = staff.post("/api/v1/plans/", {**USD_PLAN, "code": "team-c"}, format="json").json()["id"]
    moving = _subscriber(staff, drain, plan_id, "ann")
    paused = _subscriber(staff, drain, plan_id, "pat")
    assert staff.post(f"/api/v1/subscriptions/{paused}/suspend/", {}, format="json").status_code == 200
    cut = {**V2, "prices": [{"amount": "39.00", "currency": "USD"}]}
    cut["overage_rates"] = {"api_calls": [{"amount": "0.01", "currency": "USD"}]}
    assert staff.post(f"/api/v1/plans/{plan_id}/versions/", cut, format="json").status_code == 201

    # bad input is refused with the error shape and drafts nothing
    for bad in (
        {"plan": plan_id, "to_version": 7, "effective_from": "2025-01-01T00:00:00Z"},
        {"plan": plan_id, "to_version": 2, "effective_from": "2025-01-01T00:00:00Z", "currencies": ["EUR"]},
        {"plan": plan_id, "to_version": 2, "effective_from": "2025-01-01T00:00:00Z", "from_versions": [2]},
        {"plan": plan_id, "to_version": 2, "effective_from": "soon"},
    ):
        response = staff.post("/api/v1/price-migrations/", bad, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"], (bad, response.content)
    assert staff.get("/api/v1/price-migrations/").json()["count"] == 0

    # when a migration from a past date is drafted (a cut: no notice needed), previewed and started
    migration = staff.post(
        "/api/v1/price-migrations/",
        {"plan": plan_id, "to_version": 2, "effective_from": "2025-01-01T00:00:00Z"},
        format="json",
    ).json()
    preview = staff.get(f"/api/v1/price-migrations/{migration['id']}/preview/").json()
    assert preview["subscriptions"] == 1 and preview["left_out"] == [{"subscription": paused, "reason": "paused"}]
    assert preview["mrr_change"] == [{"amount": "-10.00", "currency": "USD"}]
    next_renewal = staff.get(f"/api/v1/subscriptions/{moving}/").json()["current_period_end"]
    assert preview["first_effective_at"] == next_renewal  # a cut applies at the next renewal
    assert staff.post(f"/api/v1/price-migrations/{migration['id']}/start/").status_code == 200
    assert staff.post(f"/api/v1/price-migrations/{migration['id']}/start/").status_code == 409
    run_job("subscriptions.schedule_price_changes")
    drain()
    state = staff.get(f"/api/v1/price-migrations/{migration['id']}/").json()
    assert state["status"] == "done" and state["counts"]["scheduled"] == 1 and state["counts"]["left_out"] == 1
    assert staff.get(f"/api/v1/subscriptions/{moving}/").json()["scheduled_price_change"]["price"]["amount"] == "39.00"
    # the admin page reports who was left out, by name and in words
    client.force_login(staff_user("boss"))
    page = client.get(f"/admin/subscriptions/pricemigration/{migration['id']}/change/").content.decode()
    assert "scheduled 1 · moved 0 · left out 1 · cancelled 0" in page
    left_out = page.split('class="left-out"', 1)[1].split("</table>", 1)[0]
    assert ">pat<" in left_out and "Paused by staff" in left_out and "ann" not in left_out

    # then cancelling it withdraws the scheduled change that has not happened yet
    cancelled = staff.post(f"/api/v1/price-migrations/{migration['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    run_job("subscriptions.schedule_price_changes")
    run_job("subscriptions.schedule_price_changes")  # a second beat finds nothing left
    drain()
    assert staff.get(f"/api/v1/subscriptions/{moving}/").json()["scheduled_price_change"] is None
    state = staff.get(f"/api/v1/price-migrations/{migration['id']}/").json()
    assert state["counts"] == {"scheduled": 0, "left_out": 1, "moved": 0, "cancelled": 1}
    events = StoredEvent.objects.filter(aggregate_id=moving, event_type__startswith="subscriptions.PriceChange")
    assert [(e.event_type, e.payload.get("reason")) for e in events.order_by("position")] == [
        ("subscriptions.PriceChangeScheduled", None),
        ("subscriptions.PriceChangeCancelled", "migration_cancelled"),
    ]
    assert staff.post(f"/api/v1/price-migrations/{migration['id']}/resume/").status_code == 409


def test_admin_migration_page_previews_and_its_actions_start_pause_resume_cancel(staff, drain, client):
    # given a draft migration of one subscriber to a dearer version 2, and a plan page listing both versions
    client.force_login(staff_user("boss"))
    plan_id = staff.post("/api/v1/plans/", {**USD_PLAN, "code": "team-a"}, format="json").json()["id"]
    sub = _subscriber(staff, drain, plan_id, "amy")
    assert staff.post(f"/api/v1/plans/{plan_id}/versions/", V2, format="json").status_code == 201
    plan_page = client.get(f"/admin/subscriptions/plan/{plan_id}/change/").content.decode()
    assert "plan-versions" in plan_page and "v2" in plan_page and "59.00" in plan_page
    migration = staff.post(
        "/api/v1/price-migrations/",
        {"plan": plan_id, "to_version": 2, "effective_from": "2025-01-01T00:00:00Z"},
        format="json",
    ).json()
    page = client.get(f"/admin/subscriptions/pricemigration/{migration['id']}/change/").content.decode()
    assert "1 subscriptions would move; MRR change 10.00 USD" in page

    # when staff run each action from the list
    for action, status in (("start", "running"), ("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")):
        response = client.post(
            "/admin/subscriptions/pricemigration/",
            {"action": action, "_selected_action": [migration["id"]]},
            follow=True,
        )
        assert f"{action.title()}: 1 done" in response.content.decode()
        assert staff.get(f"/api/v1/price-migrations/{migration['id']}/").json()["status"] == status
    refused = client.post(
        "/admin/subscriptions/pricemigration/", {"action": "resume", "_selected_action": [migration["id"]]}, follow=True
    )
    assert "cannot be resumed" in refused.content.decode()
    assert [e.event_type for e in StoredEvent.objects.filter(aggregate_id=migration["id"]).order_by("position")] == [
        "subscriptions.PriceMigrationDrafted",
        "subscriptions.PriceMigrationStarted",
        "subscriptions.PriceMigrationPaused",
        "subscriptions.PriceMigrationResumed",
        "subscriptions.PriceMigrationCancelled",
    ]
    assert staff.get(f"/api/v1/subscriptions/{sub}/").json()["scheduled_price_change"] is None


def test_admin_add_form_drafts_a_migration_refuses_bad_input_on_the_form_and_the_page_buttons_run_each_command(
    staff, drain, client
):
    from subscriptions.models import PriceMigration

    # given a plan with a subscriber on version 1 and a dearer version 2
    client.force_login(staff_user("boss"))
    plan_id = staff.post("/api/v1/plans/", {**USD_PLAN, "code": "team-f"}, format="json").json()["id"]
    sub = _subscriber(staff, drain, plan_id, "fay")
    assert staff.post(f"/api/v1/plans/{plan_id}/versions/", V2, format="json").status_code == 201
    form = client.get("/admin/subscriptions/pricemigration/add/")
    assert form.status_code == 200 and 'name="effective_from"' in form.content.decode()
    good = {
        "plan": plan_id,
        "to_version": "2",
        "effective_from": "2025-01-01 00:00",
        "from_versions": "1",
        "currencies": "usd",
        "subscriptions": sub,
        "created_before": "",
    }

    # bad input is shown on the form, next to its field, and drafts nothing
    for field, value, message in (
        ("to_version", "7", "The plan has no such version."),
        ("currencies", "EUR", "Version 2 is not sold in"),
        ("currencies", "dollars", "Not ISO 4217 codes"),
        ("from_versions", "2", "from_versions are other existing versions"),
        ("from_versions", "one", "Whole version numbers"),
        ("subscriptions", "not-an-id", "Subscription ids are UUIDs"),
        ("effective_from", "soon", "Enter a valid date/time."),
    ):
        response = client.post("/admin/subscriptions/pricemigration/add/", {**good, field: value})
        assert response.status_code == 200, (field, value)
        page = response.content.decode()
        assert message in page, (field, value)
        assert page.index(message) < page.index(f'name="{field}"'), (field, value)  # shown above its input
    assert PriceMigration.objects.count() == 0

    # when staff draft it
    response = client.post("/admin/subscriptions/pricemigration/add/", good)
    [migration] = PriceMigration.objects.all()
    assert response.status_code == 302 and response["Location"].endswith(f"/{migration.pk}/change/")
    assert (migration.to_version, migration.from_versions, migration.currencies) == (2, [1], ["USD"])
    assert migration.subscription_ids == [sub]

    # then its page previews it, links the impact, offers Start, and each button runs its command
    page = client.get(response["Location"]).content.decode()
    assert "1 subscriptions would move; MRR change 10.00 USD" in page
    assert f"/staff/analytics/price-migrations/{migration.pk}/impact/" in page
    assert 'value="start"' in page and 'value="resume"' not in page
    url = f"/admin/subscriptions/pricemigration/{migration.pk}/change/"
    for action, status, offered in (
        ("start", "running", ["pause", "cancel"]),
        ("pause", "paused", ["resume", "cancel"]),
        ("resume", "running", ["pause", "cancel"]),
        ("cancel", "cancelled", []),
    ):
        response = client.post(url, {"migration_action": action}, follow=True)
        page = response.content.decode()
        assert f"{action.title()}: done." in page
        assert staff.get(f"/api/v1/price-migrations/{migration.pk}/").json()["status"] == status
        assert [b for b in ("start", "pause", "resume", "cancel") if f'value="{b}"' in page] == offered
    refused = client.post(url, {"migration_action": "resume"}, follow=True).content.decode()
    assert "Resume refused — A cancelled migration cannot be resumed." in refused
    assert [e.event_type for e in StoredEvent.objects.filter(aggregate_id=str(migration.pk)).order_by("position")] == [
        "subscriptions.PriceMigrationDrafted",
        "subscriptions.PriceMigrationStarted",
        "subscriptions.PriceMigrationPaused",
        "subscriptions.PriceMigrationResumed",
        "subscriptions.PriceMigrationCancelled",
    ]
    # progress counts are on the page
    assert "scheduled 0 · moved 0 · left out 0 · cancelled 0" in page
