"""API.md's conventions over the Subscriptions API: idempotency keys, throttling and the
correlation id a request's events carry."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from sharedkernel.models import StoredEvent
from subscriptions.models import Subscription
from tests.helpers import api_client, publish
from tests.subscriptions.api import as_customer, error, new_customer

pytestmark = pytest.mark.django_db


# -- idempotency ----------------------------------------------------------------------------------


def test_same_idempotency_key_and_body_returns_the_first_response_once(staff, plan):
    ada = new_customer(staff)
    client = as_customer(ada)
    first = client.post("/api/v1/subscriptions/", {"plan": plan["id"]}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = client.post("/api/v1/subscriptions/", {"plan": plan["id"]}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() and second["Idempotent-Replayed"] == "true"
    assert Subscription.objects.count() == 1
    other = client.post(
        "/api/v1/subscriptions/", {"plan": plan["id"], "trial": True}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert other.status_code == 409 and error(other)["code"] == "idempotency_key_reused"


def test_a_failed_request_does_not_burn_its_idempotency_key(staff, plan):
    ada = new_customer(staff)
    client = as_customer(ada)
    failed = client.post("/api/v1/subscriptions/", {"plan": "not-a-uuid"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert failed.status_code == 400
    fixed = client.post("/api/v1/subscriptions/", {"plan": "not-a-uuid"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert fixed.status_code == 400  # same request, re-validated, not replayed


def test_idempotency_keys_are_scoped_to_the_caller(staff, plan):
    ada, bob = new_customer(staff), new_customer(staff, email="bob@example.com")
    a = as_customer(ada).post(
        "/api/v1/subscriptions/", {"plan": plan["id"]}, format="json", HTTP_IDEMPOTENCY_KEY="same"
    )
    b = as_customer(bob).post(
        "/api/v1/subscriptions/", {"plan": plan["id"]}, format="json", HTTP_IDEMPOTENCY_KEY="same"
    )
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


# -- throttling, events, test clocks, docs ------------------------------------------------------------


def test_throttling_answers_429(settings, staff):
    cache.clear()
    from rest_framework.throttling import SimpleRateThrottle

    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = {**original, "anon": "2/minute"}
    try:
        client = api_client()
        codes = [client.get("/api/v1/plans/").status_code for _ in range(3)]
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original
        cache.clear()
    assert codes[:2] == [200, 200] and codes[2] == 429


def test_correlation_id_is_echoed_and_used_for_events(staff, plan):
    new_customer(staff, email="corr@example.com")
    response = staff.post(
        "/api/v1/customers/",
        {"name": "Z", "email": "z@example.com", "currency": "USD", "country": "US"},
        format="json",
        HTTP_X_CORRELATION_ID="req-123",
    )
    assert response["X-Correlation-ID"] == "req-123"
    assert StoredEvent.objects.get(aggregate_id=response.json()["id"]).correlation_id == "req-123"
    publish("tests.Nothing", {})
