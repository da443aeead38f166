"""A live server with data and two tokens — staff and a customer — for tests that drive the
API over real HTTP (schemathesis, the generated client, concurrent commands)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rest_framework.authtoken.models import Token

from billing import commands as billing
from sharedkernel.values import Money
from subscriptions import commands as subs
from tests.helpers import staff_user


@dataclass(frozen=True)
class World:
    url: str
    staff_token: str
    customer_token: str
    customer_id: str
    subscription_id: str
    plans: dict[str, str]


def define_plan(code: str, price: str, tier: str = "professional") -> str:
    plan = subs.define_plan(
        code=code,
        name=code.title(),
        tier=tier,
        interval="month",
        trial_days=14,
        prices=[Money(*price.split())],
        included_usage={"api_calls": 1000},
        overage_rates={"api_calls": [Money("0.01", price.split()[1])]},
        features=["Support"],
    )
    return str(plan.pk)


@pytest.fixture
def world(live_server, drain) -> World:
    """Plans, a customer with a card and an active, paid subscription (its invoice and payment
    exist), a staff token and the customer's own token."""
    plans = {code: define_plan(code, price) for code, price in [("pro", "30.00 USD"), ("team", "60.00 USD")]}
    plans |= {f"pro-{n}": define_plan(f"pro-{n}", f"{40 + n}.00 USD") for n in range(6)}
    customer, api_key = subs.register_customer(
        name="Ada Lovelace", email="ada@example.com", currency="USD", country="US", region="CA", with_api_key=True
    )
    drain()
    billing.update_payment_method(customer_id=str(customer.pk), token="pm_card_visa")
    drain()
    sub = subs.subscribe(customer_id=str(customer.pk), plan_id=plans["pro"], currency="USD")
    drain()
    staff_token = Token.objects.create(user=staff_user()).key
    return World(
        url=live_server.url,
        staff_token=staff_token,
        customer_token=api_key,
        customer_id=str(customer.pk),
        subscription_id=str(sub.pk),
        plans=plans,
    )
