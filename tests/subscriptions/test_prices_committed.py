"""Plan versions and price migrations through the API, committed for real (no wrapping transaction)."""

from __future__ import annotations

import pytest

from sharedkernel.models import StoredEvent
from tests.helpers import api_client, staff_user
from tests.subscriptions.test_edges_committed import PLAN, with_card

pytestmark = pytest.mark.django_db(transaction=True)

V2 = {
    "prices": [{"amount": "59.00", "currency": "USD"}],
    "included_usage": {"api_calls": 2000},
    "overage_rates": {"api_calls": [{"amount": "0.02", "currency": "USD"}]},
    "trial_days": 7,
    "features": ["SSO"],
}


@pytest.fixture
def staff():
    return api_client(staff_user())


def test_api_plan_versions_new_subscriptions_get_the_current_one(staff, drain):
    # given a plan and a subscriber on its first version
    plan_id = staff.post("/api/v1/plans/", {**PLAN, "code": "team-v"}, format="json").json()["id"]
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
