"""The REST contract of API.md for plans, customers, subscriptions, events and test clocks."""

from __future__ import annotations

import pytest

from sharedkernel.models import StoredEvent
from tests.helpers import api_client
from tests.subscriptions.api import PLAN, as_customer, error, new_customer

pytestmark = pytest.mark.django_db

# -- auth, errors ----------------------------------------------------------------------


def test_no_key_is_401_with_the_error_body():
    response = api_client().get("/api/v1/subscriptions/")
    assert response.status_code == 401
    assert error(response)["code"] == "not_authenticated"
    response = api_client().get("/api/v1/subscriptions/", HTTP_AUTHORIZATION="Token nonsense")
    assert response.status_code == 401 and error(response)["code"] == "authentication_failed"


def test_plans_are_public_to_read_and_staff_only_to_write(staff, plan):
    anonymous = api_client()
    listing = anonymous.get("/api/v1/plans/")
    assert listing.status_code == 200
    [entry] = listing.json()["results"]
    assert entry["prices"] == [{"amount": "49.00", "currency": "USD"}, {"amount": "5000", "currency": "JPY"}]
    assert entry["overage_rates"] == {"api_calls": {"amount": "0.01", "currency": "USD"}}
    assert entry["included_usage"] == {"api_calls": 10000}
    assert anonymous.post("/api/v1/plans/", PLAN, format="json").status_code == 401
    customer = new_customer(staff)
    refused = as_customer(customer).post("/api/v1/plans/", PLAN | {"code": "x"}, format="json")
    assert refused.status_code == 403 and error(refused)["code"] == "permission_denied"


def test_invalid_input_is_400_naming_the_fields(staff):
    bad = PLAN | {"code": "bad plan", "tier": "platinum", "prices": [{"amount": 49.99, "currency": "USD"}]}
    response = staff.post("/api/v1/plans/", bad, format="json")
    assert response.status_code == 400
    details = error(response)["details"]
    assert {"code", "tier", "prices"} <= set(details)
    response = staff.post("/api/v1/plans/", PLAN | {"prices": [{"amount": "1.999", "currency": "USD"}]}, format="json")
    assert response.status_code == 400 and "prices" in error(response)["details"]
    response = staff.post(
        "/api/v1/plans/", PLAN | {"overage_rates": {"api_calls": {"amount": "0.01", "currency": "USD"}}}, format="json"
    )
    assert response.status_code == 400 and "overage_rates" in error(response)["details"]


def test_a_unit_rate_keeps_up_to_6_decimals_exactly(staff):
    # given a plan whose API calls cost an eighth of a thousandth of a cent
    rates = {"api_calls": [{"amount": "0.000125", "currency": "USD"}, {"amount": "0.5", "currency": "JPY"}]}
    response = staff.post("/api/v1/plans/", PLAN | {"code": "fine", "overage_rates": rates}, format="json")
    assert response.status_code == 201, response.content
    # then reading it back shows the rates exactly, with at least the minor digits
    plan = api_client().get(f"/api/v1/plans/{response.json()['id']}/").json()
    assert plan["overage_rates"] == {"api_calls": {"amount": "0.000125", "currency": "USD"}}
    by_currency = sorted(plan["overage_rates_by_currency"]["api_calls"], key=lambda r: r["currency"])
    assert by_currency == [{"amount": "0.5", "currency": "JPY"}, {"amount": "0.000125", "currency": "USD"}]
    created = StoredEvent.objects.get(event_type="subscriptions.PlanCreated", aggregate_id=plan["id"])
    assert created.payload["overage_rates"]["api_calls"][0] == {"amount": "0.000125", "currency": "USD"}


@pytest.mark.parametrize(
    ("amount", "message"),
    [("0.0000001", "at most 6 decimals"), ("1e-4", "plain decimal string"), ("1234567890123", "12 digits")],
)
def test_a_finer_or_malformed_unit_rate_is_400_naming_the_field(staff, amount, message):
    rates = {"api_calls": [{"amount": amount, "currency": "USD"}, {"amount": "1", "currency": "JPY"}]}
    response = staff.post("/api/v1/plans/", PLAN | {"code": "too-fine", "overage_rates": rates}, format="json")
    assert response.status_code == 400
    [refusal] = error(response)["details"]["overage_rates"]["api_calls"]["amount"]
    assert message in refusal
    assert not StoredEvent.objects.filter(event_type="subscriptions.PlanCreated").exists()


def test_malformed_json_is_400_not_500(staff):
    response = staff.post("/api/v1/plans/", "{not json", content_type="application/json")
    assert response.status_code == 400 and error(response)["code"] == "malformed_request"


def test_unknown_api_path_is_a_json_404(staff):
    response = staff.get("/api/v1/nothing-here/")
    assert response.status_code == 404 and error(response)["code"] == "not_found"


# -- customers and scoping -----------------------------------------------------------------


def test_creating_a_customer_returns_its_api_key_once(staff):
    customer = new_customer(staff, region="ca", tax_exempt=True)
    assert customer["api_key"] and customer["region"] == "CA" and customer["tax_exempt"] is True
    again = staff.get(f"/api/v1/customers/{customer['id']}/").json()
    assert "api_key" not in again and again["email"] == "ada@example.com"
    me = as_customer(customer).get("/api/v1/customers/").json()
    assert [c["id"] for c in me["results"]] == [customer["id"]]


def test_customer_validation(staff):
    response = staff.post(
        "/api/v1/customers/", {"name": "", "email": "nope", "currency": "XXX", "country": "USA"}, format="json"
    )
    assert response.status_code == 400
    assert {"name", "email", "currency", "country"} <= set(error(response)["details"])


def test_another_customers_objects_are_404(staff, plan):
    ada, bob = new_customer(staff), new_customer(staff, email="bob@example.com")
    sub = as_customer(ada).post("/api/v1/subscriptions/", {"plan": plan["id"]}, format="json").json()
    assert as_customer(bob).get(f"/api/v1/subscriptions/{sub['id']}/").status_code == 404
    assert as_customer(bob).get(f"/api/v1/customers/{ada['id']}/").status_code == 404
    cancel = as_customer(bob).post(f"/api/v1/subscriptions/{sub['id']}/cancel/", {}, format="json")
    assert cancel.status_code == 404
    # nor can bob subscribe ada to anything
    response = as_customer(bob).post(
        "/api/v1/subscriptions/", {"plan": plan["id"], "customer": ada["id"]}, format="json"
    )
    assert response.status_code == 400 and "customer" in error(response)["details"]
    assert as_customer(bob).get("/api/v1/subscriptions/").json()["count"] == 0


# -- subscriptions -----------------------------------------------------------------------------


def test_subscription_lifecycle_over_the_api(staff, plan, drain):
    ada = new_customer(staff)
    client = as_customer(ada)
    created = client.post("/api/v1/subscriptions/", {"plan": plan["id"], "trial": True}, format="json")
    assert created.status_code == 201
    sub = created.json()
    assert {
        "id",
        "customer",
        "plan",
        "status",
        "current_period_start",
        "current_period_end",
        "trial_end",
        "cancel_at_period_end",
        "version",
    } <= set(sub)
    assert sub["status"] == "trialing" and sub["customer"] == ada["id"]
    assert sub["price"] == {"amount": "49.00", "currency": "USD"}

    cancelled = client.post(
        f"/api/v1/subscriptions/{sub['id']}/cancel/", {"at_period_end": True, "reason": "budget"}, format="json"
    ).json()
    assert cancelled["cancel_at_period_end"] is True and cancelled["status"] == "trialing"
    resumed = client.post(f"/api/v1/subscriptions/{sub['id']}/resume/", {}, format="json").json()
    assert resumed["cancel_at_period_end"] is False
    again = client.post(f"/api/v1/subscriptions/{sub['id']}/resume/", {}, format="json")
    assert again.status_code == 409 and error(again)["code"] == "invalid_transition"

    suspend = client.post(f"/api/v1/subscriptions/{sub['id']}/suspend/", {}, format="json")
    assert suspend.status_code == 403

    now = client.post(f"/api/v1/subscriptions/{sub['id']}/cancel/", {"at_period_end": False}, format="json").json()
    assert now["status"] == "cancelled"
    twice = client.post(f"/api/v1/subscriptions/{sub['id']}/cancel/", {}, format="json")
    assert twice.status_code == 409 and error(twice)["code"] == "invalid_transition"

    timeline = client.get(f"/api/v1/subscriptions/{sub['id']}/events/").json()
    types = [e["event_type"].split(".")[1] for e in timeline["results"]]
    assert types == [
        "SubscriptionCreated",
        "PlanSelected",
        "TrialStarted",
        "SubscriptionCancellationScheduled",
        "SubscriptionResumed",
        "SubscriptionCancelled",
    ]
    first = timeline["results"][0]
    assert {
        "event_id",
        "event_type",
        "event_version",
        "occurred_on",
        "aggregate_type",
        "aggregate_id",
        "aggregate_version",
        "payload",
        "correlation_id",
        "causation_id",
    } <= set(first)


def usd_plan(staff, code: str, tier: str, price: str) -> dict:
    """Another plan to move to, priced in USD only and metering nothing, as staff define it."""
    usd_only = {"prices": [{"amount": price, "currency": "USD"}], "included_usage": {}, "overage_rates": {}}
    response = staff.post("/api/v1/plans/", PLAN | {"code": code, "tier": tier, **usd_only}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_plan_change_refusals_have_their_codes(staff, plan):
    basic = usd_plan(staff, "basic-m", "basic", "19.00")
    enterprise = usd_plan(staff, "ent-m", "enterprise", "499.00")
    ada = new_customer(staff)
    client = as_customer(ada)
    sub = client.post("/api/v1/subscriptions/", {"plan": plan["id"], "trial": True}, format="json").json()
    same = client.post(f"/api/v1/subscriptions/{sub['id']}/change-plan/", {"plan": plan["id"]}, format="json")
    assert same.status_code == 409 and error(same)["code"] == "same_plan"
    down = client.post(f"/api/v1/subscriptions/{sub['id']}/change-plan/", {"plan": basic["id"]}, format="json")
    assert down.status_code == 409 and error(down)["code"] == "downgrade_during_trial"
    stale = client.post(
        f"/api/v1/subscriptions/{sub['id']}/change-plan/", {"plan": enterprise["id"], "version": 99}, format="json"
    )
    assert stale.status_code == 409 and error(stale)["code"] == "concurrent_update"
    pending = client.post(f"/api/v1/subscriptions/{sub['id']}/change-plan/", {"plan": enterprise["id"]}, format="json")
    assert pending.status_code == 202 and pending.json()["pending_plan"] == enterprise["id"]
    approved = staff.post(f"/api/v1/subscriptions/{sub['id']}/approve-plan-change/", {}, format="json")
    assert approved.status_code == 200 and approved.json()["plan"] == enterprise["id"]
    missing = client.post(
        f"/api/v1/subscriptions/{sub['id']}/change-plan/",
        {"plan": "8d9c1a53-0000-0000-0000-000000000000"},
        format="json",
    )
    assert missing.status_code == 400 and "plan" in error(missing)["details"]


def test_lists_are_paginated_and_filtered(staff, plan):
    ada = new_customer(staff)
    other_plan = staff.post(
        "/api/v1/plans/", PLAN | {"code": "team-m", "included_usage": {}, "overage_rates": {}}, format="json"
    ).json()
    client = as_customer(ada)
    client.post("/api/v1/subscriptions/", {"plan": plan["id"]}, format="json")
    client.post("/api/v1/subscriptions/", {"plan": other_plan["id"], "trial": True}, format="json")
    page = staff.get("/api/v1/subscriptions/?page_size=1").json()
    assert set(page) == {"count", "next", "previous", "results"} and page["count"] == 2 and page["next"]
    assert staff.get("/api/v1/subscriptions/?status=trialing").json()["count"] == 1
    assert staff.get(f"/api/v1/subscriptions/?plan={plan['id']}").json()["count"] == 1
    assert staff.get(f"/api/v1/subscriptions/?customer={ada['id']}").json()["count"] == 2
    bad = staff.get("/api/v1/subscriptions/?status=sleeping")
    assert bad.status_code == 400 and "status" in error(bad)["details"]


def test_event_store_api_is_staff_only_and_filterable(staff, plan):
    ada = new_customer(staff)
    as_customer(ada).post("/api/v1/subscriptions/", {"plan": plan["id"]}, format="json")
    assert as_customer(ada).get("/api/v1/events/").status_code == 403
    everything = staff.get("/api/v1/events/").json()
    positions = [e["position"] for e in everything["results"]]
    assert positions == sorted(positions)
    created = staff.get("/api/v1/events/?type=subscriptions.SubscriptionCreated").json()
    assert created["count"] == 1
    after = staff.get(f"/api/v1/events/?after={positions[-2]}").json()
    assert [e["position"] for e in after["results"]] == positions[-1:]
    chain = created["results"][0]["correlation_id"]
    assert staff.get(f"/api/v1/events/?correlation_id={chain}").json()["count"] >= 2
    assert staff.get(f"/api/v1/events/?aggregate_id={ada['id']}").json()["results"][0]["event_type"] == (
        "subscriptions.CustomerRegistered"
    )


def test_test_clocks_only_move_forward(staff):
    clock = staff.post("/api/v1/test-clocks/", {"frozen_time": "2025-01-01T00:00:00Z"}, format="json").json()
    back = staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2024-12-31T00:00:00Z"}, format="json")
    assert back.status_code == 400 and "to" in error(back)["details"]
    naive = staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "yesterday"}, format="json")
    assert naive.status_code == 400
    assert api_client().post("/api/v1/test-clocks/", {"frozen_time": "2025-01-01T00:00:00Z"}).status_code == 401


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in ("/api/v1/subscriptions/{id}/change-plan/", "/api/v1/test-clocks/{id}/advance/", "/api/v1/events/"):
        assert path in text
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()
    assert b"cdn" not in docs.content.lower()
