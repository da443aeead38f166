"""What the flow tests do through the API, as an integrator would: plans, customers on test clocks,
moving a clock on and reading the invoices it made."""

from __future__ import annotations

from tests.conftest import wait_until_handled


def money(amount: str, currency: str = "USD") -> dict:
    return {"amount": amount, "currency": currency}


def make_plan(staff, code, price, tier="professional", interval="month", trial_days=0, *, name=None) -> dict:
    response = staff.post(
        "/api/v1/plans/",
        {
            "code": code,
            "name": name or code.title(),
            "tier": tier,
            "interval": interval,
            "trial_days": trial_days,
            "prices": [money(price)],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def new_customer(staff, name: str, clock: dict, *, country: str = "GB") -> dict:
    """A USD customer called ``name`` (e-mail ``<name>@example.com``) living on ``clock``."""
    response = staff.post(
        "/api/v1/customers/",
        {
            "name": name,
            "email": f"{name.lower()}@example.com",
            "currency": "USD",
            "country": country,
            "test_clock": clock["id"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def advance(staff, clock, to: str):
    response = staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": to}, format="json")
    assert response.status_code == 200, response.content
    wait_until_handled()


def invoices(staff, sub_id) -> list[dict]:
    return list(reversed(staff.get("/api/v1/invoices/", {"subscription": sub_id}).json()["results"]))
