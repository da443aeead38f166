"""Issue 12, "Every bad input gets a clear 4xx": one regression test per defect, through the API.

Each refusal has the error body {"error": {"code", "message", "details"}} and names the field.
The input rules and bounds are written down in docs/api-input.md.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from billing.models import BillingAccount, CreditEntry
from notifications.models import WebhookEndpoint
from sharedkernel.clock import FixedClock
from sharedkernel.models import IdempotencyRecord, StoredEvent, TestClock
from sharedkernel.values import Money
from subscriptions import commands as subs
from subscriptions.models import Customer, Plan, UsageRecord
from tests.billing.helpers import customer
from tests.billing.helpers import plan as define_plan
from tests.conftest import at
from tests.helpers import USD_PLAN, api_client, staff_user

pytestmark = pytest.mark.django_db


def error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"].strip()
    return body["error"]


def sentences(detail) -> list[str]:
    if isinstance(detail, dict):
        return [m for value in detail.values() for m in sentences(value)]
    if isinstance(detail, list):
        return [m for value in detail for m in sentences(value)]
    return [str(detail)]


def credit(staff, customer_id, amount, **headers):
    return staff.post(
        f"/api/v1/customers/{customer_id}/credits/", {"amount": amount, "reason": "goodwill"}, format="json", **headers
    )


# -- 1. the money field never crashes on a badly shaped value ------------------------------------


@pytest.mark.parametrize(
    "amount",
    [
        "5.00",  # a bare string where Money belongs
        {"amount": {"amount": "5.00", "currency": "USD"}, "currency": "USD"},  # nested
        {"amount": "5.00", "currency": "USD", "note": "x"},  # an extra key
        {"amount": "5.00"},  # a missing key
        ["5.00", "USD"],
        None,
    ],
)
def test_a_badly_shaped_money_value_is_a_400_naming_the_field(staff, drain, amount):
    c = customer(drain)
    err = error(credit(staff, c.id, amount), 400)
    assert err["code"] == "validation_error" and "amount" in err["details"]
    assert all(m.endswith(".") and "{" not in m for m in sentences(err["details"]["amount"]))  # plain sentences
    assert BillingAccount.objects.get(pk=c.id).credit_minor == {}


def test_a_plan_price_that_is_not_money_is_a_400(staff):
    err = error(staff.post("/api/v1/plans/", USD_PLAN | {"prices": ["49.99"]}, format="json"), 400)
    assert "prices" in err["details"]
    assert not Plan.objects.exists()


# -- 4. and "wrong input accepted": one strict reading of amounts ------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "part"),
    [
        ("1e3", "USD", "amount"),  # was stored as 1000.00 USD
        (" 1.00 ", "USD", "amount"),
        ("\u0661\u0662", "USD", "amount"),  # Arabic-Indic digits
        ("1.2500", "KWD", "amount"),  # four decimals for a three-decimal currency
        ("1.00", "usd", "currency"),
        ("+1.00", "USD", "amount"),
        ("1_000.00", "USD", "amount"),
        ("1234567890123.00", "USD", "amount"),  # 13 digits before the point
        ("1E+400", "USD", "amount"),  # was decimal.InvalidOperation, a 500
        ("12345678901234567890123456", "USD", "amount"),  # was bigint out of range, a 500
        ("NaN", "USD", "amount"),
        (5, "USD", "amount"),  # a number, not a decimal string
    ],
)
def test_amounts_not_in_the_one_accepted_shape_are_refused(staff, drain, amount, currency, part):
    c = customer(drain)
    err = error(credit(staff, c.id, {"amount": amount, "currency": currency}), 400)
    assert err["code"] == "validation_error"
    assert list(err["details"]["amount"]) == [part]
    assert CreditEntry.objects.count() == 0


def test_the_same_rules_hold_for_plan_prices_and_refunds_and_valid_amounts_still_pass(staff, drain):
    for bad in ("1e3", "49.999", "-49.00", "4 9.00"):
        response = staff.post(
            "/api/v1/plans/", USD_PLAN | {"prices": [{"amount": bad, "currency": "USD"}]}, format="json"
        )
        assert error(response, 400)["details"]["prices"], bad
    kwd = USD_PLAN | {"code": "kwd", "prices": [{"amount": "1.250", "currency": "KWD"}], "overage_rates": {}}
    assert staff.post("/api/v1/plans/", kwd, format="json").json()["prices"] == [{"amount": "1.250", "currency": "KWD"}]
    c = customer(drain)
    assert credit(staff, c.id, {"amount": "5", "currency": "USD"}).json()["credit"] == {
        "amount": "5.00",
        "currency": "USD",
    }


# -- 2. a proration preview for something that is not a plan id ----------------------------------


def test_a_proration_preview_for_a_plan_that_is_not_an_id_is_a_400(staff, drain):
    plan = define_plan("p", "10.00 USD", tier="basic")
    c = customer(drain)
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(plan.id), clock=FixedClock(at("2025-01-01 00:00")))
    drain()
    err = error(staff.get(f"/api/v1/subscriptions/{sub.id}/proration-preview/?plan=abc"), 400)
    assert "plan" in err["details"]


# -- 3. OPTIONS on views without a queryset ------------------------------------------------------


def test_options_describes_views_that_act_for_a_customer_by_id(staff, drain):
    c = customer(drain)
    for path in ("payment-method", "credits", "balance"):
        response = staff.options(f"/api/v1/customers/{c.id}/{path}/")
        assert response.status_code == 200, (path, response.content)
    described = staff.options(f"/api/v1/customers/{c.id}/payment-method/").json()
    assert "token" in described["actions"]["PUT"]


# -- 4. bounds on usage and included quantities -------------------------------------------------


def test_usage_quantities_beyond_the_bound_are_refused_per_record_and_the_rest_of_the_batch_counts(staff, drain):
    plan = define_plan("api", "10.00 USD", tier="basic", name="API", included_usage={"api_calls": 1000})
    clock = TestClock.objects.create(frozen_time=at("2025-05-10 00:00"))
    c = customer(drain, test_clock_id=str(clock.pk))
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(plan.id), clock=FixedClock(at("2025-05-01 00:00")))
    drain()

    def record(key, quantity):
        return {
            "subscription": str(sub.id),
            "metric": "api_calls",
            "quantity": quantity,
            "timestamp": "2025-05-05T12:00:00Z",
            "idempotency_key": key,
        }

    batch = [record("ok", 7), record("2^63", 2**63), record("huge", 10**30), record("bound+1", 10**15 + 1)]
    response = staff.post("/api/v1/usage/", batch, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["accepted"] == 1
    assert [(e["index"], e["field"], e["code"]) for e in body["errors"]] == [
        (1, "quantity", "too_large"),
        (2, "quantity", "too_large"),
        (3, "quantity", "too_large"),
    ]
    assert list(UsageRecord.objects.values_list("quantity", flat=True)) == [7]


def test_included_usage_beyond_the_bound_is_refused(staff):
    err = error(staff.post("/api/v1/plans/", USD_PLAN | {"included_usage": {"api_calls": 10**30}}, format="json"), 400)
    assert "included_usage" in err["details"]
    assert not Plan.objects.exists()


# -- 5. and wrong input accepted: customers' e-mail addresses ------------------------------------


def _customer_body(email):
    return {"name": "Ada", "email": email, "currency": "USD", "country": "GB"}


@pytest.mark.django_db(transaction=True)
def test_a_refused_customer_leaves_nothing_behind():
    """Outside a test transaction: a refused POST /customers/ commits no login, token, customer or event."""
    staff = api_client(staff_user())
    users_before = get_user_model().objects.count()
    too_long = "a" * 64 + "@" + ("b" * 62 + ".") * 3 + "com"  # 257 characters: was a database error
    err = error(staff.post("/api/v1/customers/", _customer_body(too_long), format="json"), 400)
    assert "email" in err["details"]

    first = staff.post("/api/v1/customers/", _customer_body("Ada@Example.com"), format="json")
    assert first.status_code == 201, first.content
    users_after_first, events_after_first = get_user_model().objects.count(), StoredEvent.objects.count()
    again = staff.post("/api/v1/customers/", _customer_body("ada@EXAMPLE.com"), format="json")
    assert error(again, 409)["code"] == "email_taken"

    assert users_after_first == users_before + 1 == get_user_model().objects.count()
    assert Token.objects.count() == 1 + 1  # the staff's and the one customer's
    assert Customer.objects.count() == 1
    assert StoredEvent.objects.count() == events_after_first


# -- the EUR credit for a customer billed only in USD --------------------------------------------


def test_a_credit_in_a_currency_the_customer_is_not_billed_in_is_refused(staff, drain):
    plan = define_plan("dual", "10.00 USD, 9.00 EUR", tier="basic")
    c = customer(drain)
    err = error(credit(staff, c.id, {"amount": "5.00", "currency": "EUR"}), 409)
    assert err["code"] == "currency_mismatch" and "amount" in err["details"]
    assert BillingAccount.objects.get(pk=c.id).credit_minor == {}
    assert staff.get(f"/api/v1/customers/{c.id}/balance/").json()["balances"] == [{"amount": "0.00", "currency": "USD"}]
    # Once the customer has a EUR subscription, a EUR credit can be used, so it is granted.
    subs.subscribe(customer_id=str(c.id), plan_id=str(plan.id), currency="EUR")
    drain()
    granted = credit(staff, c.id, {"amount": "5.00", "currency": "EUR"})
    assert granted.status_code == 201, granted.content
    assert {"amount": "5.00", "currency": "EUR"} in granted.json()["balances"]


# -- webhook endpoints that would receive nothing --------------------------------------------------


def test_a_webhook_endpoint_for_no_events_is_refused(staff, drain, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    customer(drain)
    err = error(
        staff.post("/api/v1/webhook-endpoints/", {"url": "http://127.0.0.1:9/h", "events": []}, format="json"), 400
    )
    assert "events" in err["details"]
    assert not WebhookEndpoint.objects.exists()


# -- 6. test clocks: an unbounded horizon is refused up front --------------------------------------


def test_a_test_clock_is_not_advanced_to_the_end_of_the_calendar(staff, drain):
    clock = staff.post("/api/v1/test-clocks/", {"frozen_time": "2025-01-01T00:00:00Z"}, format="json").json()
    plan = subs.define_plan(
        code="p", name="P", tier="basic", interval="month", trial_days=0, prices=[Money("10.00", "USD")]
    )
    c = customer(drain, test_clock_id=clock["id"])
    subs.subscribe(customer_id=str(c.id), plan_id=str(plan.id))
    drain()
    advance = f"/api/v1/test-clocks/{clock['id']}/advance/"
    for far in ("9999-12-31T23:59:59Z", "9999-12-31T23:00:00-05:00", "2031-01-01T00:00:00Z"):
        err = error(staff.post(advance, {"to": far}, format="json"), 400)
        assert "to" in err["details"], far
    stored = TestClock.objects.get(pk=clock["id"])
    assert (stored.status, stored.frozen_time) == ("ready", at("2025-01-01 00:00"))  # nothing ran, nothing half-done
    assert staff.post(advance, {"to": "2027-12-01T00:00:00Z"}, format="json").status_code == 200


def test_a_test_clock_does_not_start_beyond_the_horizon(staff):
    far = staff.post("/api/v1/test-clocks/", {"frozen_time": "9999-12-31T23:59:59Z"}, format="json")
    assert "frozen_time" in error(far, 400)["details"]
    assert not TestClock.objects.exists()


# -- 7. bodies too large or too deep ---------------------------------------------------------------


@pytest.mark.parametrize("idempotency_key", [None, "big-1"])
def test_a_body_over_the_size_limit_is_a_413_with_the_error_body(staff, drain, settings, idempotency_key):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    c = customer(drain)
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
    response = staff.post(
        f"/api/v1/customers/{c.id}/credits/",
        {"amount": {"amount": "1.00", "currency": "USD"}, "reason": "x" * 5_000},
        format="json",
        **headers,
    )
    err = error(response, 413)
    assert err["code"] == "request_too_large" and "2,000" in err["message"]
    assert CreditEntry.objects.count() == 0 and not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize("idempotency_key", [None, "deep-1"])
def test_deeply_nested_json_is_a_400_with_the_error_body(staff, idempotency_key):
    deep = "[" * 100_000 + "]" * 100_000
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
    response = staff.post("/api/v1/plans/", deep, content_type="application/json", **headers)
    assert error(response, 400)["code"] == "malformed_request"
    assert not Plan.objects.exists()


def test_refusals_are_not_stored_as_idempotent_answers(staff, drain):
    c = customer(drain)
    bad = credit(staff, c.id, {"amount": "1e3", "currency": "USD"}, HTTP_IDEMPOTENCY_KEY="k1")
    assert bad.status_code == 400
    assert not IdempotencyRecord.objects.exists()


def test_test_clock_horizon_is_a_setting(staff, settings):
    settings.TEST_CLOCK_MAX_ADVANCE = timedelta(days=10)
    clock = staff.post("/api/v1/test-clocks/", {"frozen_time": "2025-01-01T00:00:00Z"}, format="json").json()
    advance = f"/api/v1/test-clocks/{clock['id']}/advance/"
    assert error(staff.post(advance, {"to": "2025-01-12T00:00:00Z"}, format="json"), 400)["details"]["to"]
    assert staff.post(advance, {"to": "2025-01-11T00:00:00Z"}, format="json").status_code == 200


def test_signing_up_with_an_address_staff_registered_makes_no_second_customer(staff, client):
    from allauth.account.models import EmailAddress, EmailConfirmationHMAC

    from subscriptions.models import SignupProfile

    assert staff.post("/api/v1/customers/", _customer_body("grace@example.com"), format="json").status_code == 201
    user = get_user_model().objects.create_user(username="grace", email="Grace@example.com", password="pw-Grace-12345")
    SignupProfile.objects.create(user=user, name="Grace", currency="USD", country="US")
    address = EmailAddress.objects.create(user=user, email="Grace@example.com", primary=True, verified=False)

    response = client.post(f"/accounts/confirm-email/{EmailConfirmationHMAC(address).key}/", follow=True)

    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert Customer.objects.filter(email__iexact="grace@example.com").count() == 1
    assert not Customer.objects.filter(user=user).exists()
