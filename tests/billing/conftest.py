"""Billing's payment gateway, chosen per test: a sandbox of the test's own, or the fake Stripe."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from billing.ports import GATEWAYS, payment_gateway, reset_adapters
from tests.fakes.servers import FakeServer, FakeStripe


@pytest.fixture
def gateway(settings):
    """Select a gateway adapter class by dotted path for one test; the built instance is returned."""

    def use(cls_path: str):
        GATEWAYS["test"] = cls_path
        settings.BILLING_PAYMENT_GATEWAY = "test"
        reset_adapters()
        return payment_gateway()

    yield use
    GATEWAYS.pop("test", None)
    reset_adapters()


@pytest.fixture
def stripe(settings, gateway):
    """``with stripe() as server:`` Stripe is up (a local fake that answers a repeated
    Idempotency-Key with its first answer) and Billing charges through it; ``stripe(fresh=False)``
    is Stripe back after an outage, remembering what it answered."""

    @contextmanager
    def running(*, fresh: bool = True):
        if fresh:
            FakeStripe.answered = {}
        with FakeServer(FakeStripe) as server:
            settings.STRIPE_API_BASE, settings.STRIPE_API_KEY = server.url, "sk_test_fake"
            gateway("billing.acl.payments.StripeGateway")
            yield server

    return running
