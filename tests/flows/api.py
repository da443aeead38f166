"""What the flow tests do through the API, as an integrator would: plans, customers on test clocks,
moving a clock on and reading the invoices it made."""

from __future__ import annotations

import time

from notifications.models import Notification, WebhookDelivery
from sharedkernel.scheduling import run_job
from tests.conftest import wait_until_handled


def money(amount: str, currency: str = "USD") -> dict:
    return {"amount": amount, "currency": currency}


def make_plan(staff, code, price, tier="professional", interval="month", trial_days=0, *, name=None, **terms) -> dict:
    """A USD plan created by staff; ``terms`` are the rest of the body (included usage, overage rates)."""
    response = staff.post(
        "/api/v1/plans/",
        {
            "code": code,
            "name": name or code.title(),
            "tier": tier,
            "interval": interval,
            "trial_days": trial_days,
            "prices": [money(price)],
            **terms,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def new_customer(staff, name: str, clock: dict | None = None, *, country: str = "GB", email: str | None = None) -> dict:
    """A USD customer called ``name`` (e-mail ``<name>@example.com`` unless given), living on
    ``clock`` if there is one."""
    body = {"name": name, "email": email or f"{name.lower()}@example.com", "currency": "USD", "country": country}
    if clock is not None:
        body["test_clock"] = clock["id"]
    response = staff.post("/api/v1/customers/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def advance(staff, clock, to: str):
    response = staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": to}, format="json")
    assert response.status_code == 200, response.content
    wait_until_handled()


def invoices(staff, sub_id) -> list[dict]:
    return list(reversed(staff.get("/api/v1/invoices/", {"subscription": sub_id}).json()["results"]))


def settle(timeout: float = 30) -> None:
    """Every delivery handled, and what handlers leave for after their commit (the e-mail, a webhook's
    first attempt, sent by the worker) done too — only then is there something to assert on."""
    wait_until_handled()
    deadline = time.monotonic() + timeout
    while (
        Notification.objects.filter(status="queued").exists()
        or WebhookDelivery.objects.filter(status="pending").exists()
    ):
        assert time.monotonic() < deadline, (
            "e-mail or webhooks still waiting to go out: "
            f"{list(Notification.objects.filter(status='queued').values_list('template', 'cause_event_type'))} "
            f"{list(WebhookDelivery.objects.filter(status='pending').values_list('event_type', 'created_at'))}"
        )
        time.sleep(0.05)


def two_beats_schedule_price_changes() -> None:
    """Beat's price-change job, run twice as a second beat would, and all it led to settled."""
    run_job("subscriptions.schedule_price_changes")
    run_job("subscriptions.schedule_price_changes")
    settle()
