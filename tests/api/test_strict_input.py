"""What schemathesis found accepted though the schema says otherwise (ST201): each is now a 400
with the error body naming the parameter or field, and nothing is written.

- a ``page_size`` that is not a whole number ≥ 1 was read as the default page size;
- a filter given with no value (``?subscription=``) listed every row;
- a number where the schema says string (``"reason": 0``, ``"features": [0]``, ``"name": 0``)
  was stored as its text;
- a usage record refused on its own answered 200 ``{"accepted": 0}``.
"""

from __future__ import annotations

import pytest

from billing.models import CreditEntry
from sharedkernel.models import StoredEvent, TestClock
from subscriptions import commands as subs
from subscriptions.models import PlanVersion, UsageRecord
from tests.api.test_bad_input import error
from tests.billing.helpers import customer, metered_plan
from tests.helpers import api_client, staff_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(db):
    return api_client(staff_user())


@pytest.fixture
def plan(db):
    return metered_plan("pro")


@pytest.mark.parametrize("page_size", ["abc", "0", "-1", "1.5", "null", "٣"])
def test_a_page_size_that_is_not_a_whole_number_from_1_is_refused(staff, plan, page_size):
    refused = error(staff.get(f"/api/v1/plans/?page_size={page_size}"), 400)
    assert list(refused["details"]) == ["page_size"]
    assert "whole number from 1 to 500" in refused["details"]["page_size"][0]


def test_a_page_size_given_twice_is_refused_and_a_good_one_still_pages(staff, plan):
    assert list(error(staff.get("/api/v1/plans/?page_size=1&page_size=2"), 400)["details"]) == ["page_size"]
    page = staff.get("/api/v1/plans/?page_size=1")
    assert page.status_code == 200 and page.json()["count"] == 1 and len(page.json()["results"]) == 1
    assert staff.get("/api/v1/plans/?page_size=5000").status_code == 200  # read as the 500 at most


@pytest.mark.parametrize(
    "url, name",
    [
        ("/api/v1/invoices/?subscription=", "subscription"),
        ("/api/v1/subscriptions/?plan=", "plan"),
        ("/api/v1/customers/?test_clock=%20", "test_clock"),
    ],
)
def test_a_filter_with_no_value_is_refused_instead_of_listing_everything(staff, plan, url, name):
    refused = error(staff.get(url), 400)
    assert list(refused["details"]) == [name]
    assert "leave the parameter out" in refused["details"][name][0]


def test_a_number_where_the_reason_should_be_text_grants_no_credit(staff, drain):
    c = customer(drain, card=None)
    response = staff.post(
        f"/api/v1/customers/{c.id}/credits/",
        {"amount": {"amount": "5.00", "currency": "USD"}, "reason": 0},
        format="json",
    )
    assert error(response, 400)["details"] == {"reason": ["Not a valid string."]}
    assert not CreditEntry.objects.exists()


def test_a_number_among_the_features_makes_no_new_version(staff, plan):
    terms = {"trial_days": 0, "prices": [{"amount": "40.00", "currency": "USD"}], "features": ["SSO", 0]}
    response = staff.post(f"/api/v1/plans/{plan.id}/versions/", terms, format="json")
    assert error(response, 400)["details"] == {"features": {"1": ["Not a valid string."]}}
    assert list(PlanVersion.objects.filter(plan=plan).values_list("version", flat=True)) == [1]


def test_a_test_clock_named_by_a_number_is_not_created(staff):
    response = staff.post("/api/v1/test-clocks/", {"name": 0, "frozen_time": "2025-01-01T00:00:00Z"}, format="json")
    assert error(response, 400)["details"] == {"name": ["Not a valid string."]}
    assert not TestClock.objects.exists()


def test_a_usage_record_refused_on_its_own_is_a_400_and_a_partly_taken_batch_a_200(staff, plan, drain):
    # given an active subscription that meters api_calls
    c = customer(drain)
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(plan.id), currency="USD")
    drain()
    good = {"subscription": str(sub.id), "metric": "api_calls", "quantity": 3, "idempotency_key": "a"}
    good["timestamp"] = sub.current_period_start.isoformat()

    # when a record without its timestamp comes alone, then it is a 400 naming the field, and nothing is kept
    alone = error(staff.post("/api/v1/usage/", {**good, "timestamp": None}, format="json"), 400)
    assert alone["code"] == "usage_refused"
    assert [(e["index"], e["field"]) for e in alone["details"]["errors"]] == [(0, "timestamp")]
    assert not UsageRecord.objects.exists()

    # when a list has nothing good in it, then it is a 400 too
    both = error(staff.post("/api/v1/usage/", [{**good, "quantity": -1}, {**good, "metric": ""}], format="json"), 400)
    assert [e["code"] for e in both["details"]["errors"]] == ["negative", "required"]
    assert not UsageRecord.objects.exists()

    # when one record of two is good, then the call answers 200, takes it and lists the other
    partly = staff.post("/api/v1/usage/", [good, {**good, "idempotency_key": ""}], format="json")
    assert partly.status_code == 200, partly.content
    assert partly.json()["accepted"] == 1 and [e["index"] for e in partly.json()["errors"]] == [1]
    assert list(UsageRecord.objects.values_list("quantity", flat=True)) == [3]


@pytest.mark.parametrize(
    "url, name",
    [
        ("/api/v1/plans/?archived=null", "archived"),
        ("/api/v1/events/?after=0.5", "after"),
        ("/api/v1/payments/?status=paid", "status"),  # a payment succeeds; "paid" is an invoice's word
    ],
)
def test_a_filter_value_of_the_wrong_kind_is_refused_instead_of_ignored(staff, plan, url, name):
    refused = error(staff.get(url), 400)
    assert list(refused["details"]) == [name]


def test_the_boolean_and_whole_number_filters_still_filter(staff, plan):
    subs.archive_plan(plan_id=str(plan.id))
    assert staff.get("/api/v1/plans/?archived=true").json()["count"] == 1
    assert staff.get("/api/v1/plans/?archived=false").json()["count"] == 0
    assert staff.get("/api/v1/events/?after=0").json()["count"] == 2  # PlanCreated, PlanArchived
    last = StoredEvent.objects.order_by("-position").values_list("position", flat=True).first()
    assert [e["event_type"] for e in staff.get(f"/api/v1/events/?after={last - 1}").json()["results"]] == [
        "subscriptions.PlanArchived"
    ]
