"""The API calls the Subscriptions API tests share: the plan body, a customer over the API, a
client with that customer's key, and the error body's shape."""

from __future__ import annotations

from tests.helpers import api_client

PLAN = {
    "code": "pro-m",
    "name": "Pro",
    "tier": "professional",
    "interval": "month",
    "trial_days": 14,
    "prices": [{"amount": "49.00", "currency": "USD"}, {"amount": "5000", "currency": "JPY"}],
    "included_usage": {"api_calls": 10000},
    "overage_rates": {"api_calls": [{"amount": "0.01", "currency": "USD"}, {"amount": "1", "currency": "JPY"}]},
    "features": ["Priority support"],
}


def new_customer(staff, email="ada@example.com", **extra):
    response = staff.post(
        "/api/v1/customers/",
        {"name": "Ada", "email": email, "currency": "USD", "country": "GB", **extra},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def as_customer(customer):
    client = api_client()
    client.credentials(HTTP_AUTHORIZATION=f"Token {customer['api_key']}")
    return client


def error(response):
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    return body["error"]
