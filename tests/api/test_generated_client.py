"""A typed client generated from /api/schema/ with openapi-python-client drives a short flow.

The client is generated into a temporary directory from the schema the live server serves, so
a schema that offers a body the server cannot take (form-encoded money), a missing error
response or a wrong field type breaks this test the way it would break an integrator.
Events are handled inline (EVENT_DISPATCH=inline): each call's effects in every context are
there for the next call, as API.md's "read your writes" promises.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def generated_client(world, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("post_hooks: []\nproject_name_override: shub_client\npackage_name_override: shub_client\n")
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("openapi-python-client")),
            "generate",
            "--url",
            f"{world.url}/api/schema/",
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(tmp_path / "shub_client"),
            "--fail-on-warning",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("shub_client")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "shub_client" or m.startswith("shub_client.")]:
            del sys.modules[name]


def test_a_generated_client_creates_a_plan_a_customer_with_a_card_a_subscription_and_reads_its_invoice(
    world, generated_client, settings
):
    settings.EVENT_DISPATCH = "inline"
    shub = generated_client
    v1 = importlib.import_module("shub_client.api.v1")
    models = importlib.import_module("shub_client.models")

    def api(name):
        return importlib.import_module(f"shub_client.api.v1.{name}")

    def monthly_plan(code, name, tier, amount, **fields):
        """A monthly plan priced in USD, as the typed client takes it."""
        return models.PlanInputRequest(
            code=code,
            name=name,
            tier=tier,
            interval=models.IntervalEnum.MONTH,
            prices=[models.Money(amount=amount, currency="USD")],
            **fields,
        )

    del v1
    staff = shub.AuthenticatedClient(base_url=world.url, token=world.staff_token, prefix="Token")

    # given a plan staff created through the typed client (a JSON body with nested money)
    pro = monthly_plan("gen-pro", "Generated Pro", models.PlanInputTierEnum.PROFESSIONAL, "25.00", trial_days=0)
    created = api("v1_plans_create").sync_detailed(client=staff, body=pro, idempotency_key="gen-plan-1")
    assert created.status_code == 201, created.content
    plan = created.parsed
    assert isinstance(plan, models.PlanOut) and plan.prices[0].amount == "25.00"

    # and a customer, whose own token comes back once
    registered = api("v1_customers_create").sync_detailed(
        client=staff,
        body=models.CustomerInputRequest(
            name="Grace Hopper", email="grace@example.com", currency="USD", country="US", region="CA"
        ),
    )
    assert registered.status_code == 201, registered.content
    customer = registered.parsed
    me = shub.AuthenticatedClient(base_url=world.url, token=customer.api_key, prefix="Token")

    # when the customer attaches a card and subscribes, with their own token
    card = api("v1_customers_payment_method_update").sync_detailed(
        UUID(str(customer.id)), client=me, body=models.TokenInputRequest(token="pm_card_visa")
    )
    assert card.status_code == 200, card.content
    assert card.parsed.last4 == "4242"
    subscribed = api("v1_subscriptions_create").sync_detailed(
        client=me, body=models.CreateInputRequest(plan=UUID(str(plan.id)), trial=False)
    )
    assert subscribed.status_code == 201, subscribed.content
    sub = subscribed.parsed

    # then the customer reads the first invoice, paid for the plan's price
    invoices = api("v1_invoices_list").sync_detailed(client=me, subscription=UUID(str(sub.id)))
    assert invoices.status_code == 200, invoices.content
    [invoice] = invoices.parsed.results
    assert (invoice.status.value, invoice.total.amount, invoice.total.currency) == ("paid", "25.00", "USD")
    assert api("v1_subscriptions_retrieve").sync(UUID(str(sub.id)), client=me).status.value == "active"

    # and an error answer is parsed into the one documented error body
    nope = monthly_plan("nope", "Nope", models.PlanInputTierEnum.BASIC, "1.00")
    refused = api("v1_plans_create").sync_detailed(client=me, body=nope)
    assert refused.status_code == 403
    assert isinstance(refused.parsed, models.ErrorResponse) and refused.parsed.error.code == "permission_denied"
