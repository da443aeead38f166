"""The Stripe and HTTP tax adapters against local fake servers (loopback only)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.acl.payments import StripeGateway
from billing.acl.tax import HttpTaxCalculator
from billing.values import InvalidPaymentMethod, Jurisdiction, PaymentOutcome, TaxUnavailable
from sharedkernel.values import Money
from tests.fakes.servers import FakeServer, FakeStripe, FakeTaxApi


@pytest.fixture
def stripe_server(settings):
    FakeStripe.answered = {}
    with FakeServer(FakeStripe) as server:
        settings.STRIPE_API_BASE = server.url
        settings.STRIPE_API_KEY = "sk_test_fake"
        yield server


@pytest.fixture
def tax_server(settings):
    with FakeServer(FakeTaxApi) as server:
        settings.TAX_API_URL = server.url
        settings.TAX_API_RETRIES = 2
        settings.TAX_API_TIMEOUT = 2
        yield server


def test_stripe_charge_success_decline_and_outage_become_our_payment_results(stripe_server):
    gateway = StripeGateway()
    ok = gateway.charge(amount=Money("49.99", "USD"), token="pm_ok", idempotency_key="pay-1:1", description="INV-1")
    assert ok.outcome is PaymentOutcome.SUCCEEDED and ok.reference.startswith("pi_")
    sent = stripe_server.requests[-1]
    assert sent["form"]["amount"] == "4999" and sent["form"]["currency"] == "usd" and sent["form"]["confirm"] == "true"
    assert sent["headers"]["Idempotency-Key"] == "pay-1:1"
    assert sent["headers"]["Authorization"] == "Bearer sk_test_fake"

    declined = gateway.charge(
        amount=Money("5000", "JPY"), token="pm_declined", idempotency_key="pay-2:1", description="INV-2"
    )
    assert declined.outcome is PaymentOutcome.DECLINED and not declined.transient
    assert declined.failure_code == "insufficient_funds" and "insufficient funds" in declined.failure_message
    assert declined.reference.startswith("pi_") and stripe_server.requests[-1]["form"]["amount"] == "5000"

    down = gateway.charge(amount=Money("1.000", "KWD"), token="pm_down", idempotency_key="pay-3:1", description="x")
    assert down.outcome is PaymentOutcome.ERROR and down.transient
    assert sum(1 for r in stripe_server.requests if r["headers"].get("Idempotency-Key") == "pay-3:1") == 3  # retried


def test_a_repeated_idempotency_key_never_charges_twice(stripe_server):
    gateway = StripeGateway()
    first = gateway.charge(amount=Money("10.00", "USD"), token="pm_ok", idempotency_key="pay-9:1", description="x")
    again = gateway.charge(amount=Money("10.00", "USD"), token="pm_ok", idempotency_key="pay-9:1", description="x")
    assert first.reference == again.reference


def test_stripe_describe_and_refund(stripe_server):
    gateway = StripeGateway()
    method = gateway.describe("pm_ok")
    assert (method.brand, method.last4) == ("visa", "4242")
    with pytest.raises(InvalidPaymentMethod, match="No such PaymentMethod"):
        gateway.describe("pm_nope")
    refund = gateway.refund(charge_reference="pi_1", amount=Money("5.00", "USD"), idempotency_key="r-1")
    assert refund.succeeded and refund.reference.startswith("re_")
    assert stripe_server.requests[-1]["form"] == {"payment_intent": "pi_1", "amount": "500"}


def test_http_tax_rates_are_fetched_cached_and_never_invented(tax_server):
    calculator = HttpTaxCalculator()
    ca = calculator.calculate(amount=Money("100.00", "USD"), jurisdiction=Jurisdiction("US", "CA"), exempt=False)
    assert (ca.rate, ca.tax, ca.name) == (Decimal("0.0725"), Money("7.25", "USD"), "California sales tax")
    calculator.calculate(amount=Money("30.00", "USD"), jurisdiction=Jurisdiction("US", "CA"), exempt=False)
    assert len(tax_server.requests) == 1  # cached per jurisdiction

    exempt = calculator.calculate(amount=Money("100.00", "USD"), jurisdiction=Jurisdiction("US", "CA"), exempt=True)
    assert exempt.tax == Money("0.00", "USD") and exempt.exempt and exempt.exempt_reason

    with pytest.raises(TaxUnavailable, match="503"):
        calculator.calculate(amount=Money("1.00", "USD"), jurisdiction=Jurisdiction("US", "FAIL"), exempt=False)
    assert sum(1 for r in tax_server.requests if r["query"].get("region") == "FAIL") == 3  # 1 + 2 retries
    with pytest.raises(TaxUnavailable, match="not a rate"):
        calculator.calculate(amount=Money("1.00", "USD"), jurisdiction=Jurisdiction("US", "JUNK"), exempt=False)


def test_an_unreachable_tax_api_times_out_into_tax_unavailable(settings):
    settings.TAX_API_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    settings.TAX_API_RETRIES = 0
    with pytest.raises(TaxUnavailable, match="unreachable"):
        HttpTaxCalculator().calculate(amount=Money("1.00", "USD"), jurisdiction=Jurisdiction("SE"), exempt=False)


@pytest.mark.django_db
def test_a_tax_outage_keeps_the_invoice_a_visible_draft_until_the_retry_succeeds(settings, drain):
    from billing.models import Invoice
    from billing.ports import reset_adapters
    from sharedkernel.scheduling import run_job
    from subscriptions import commands as subs
    from tests.billing.helpers import customer, plan

    settings.BILLING_TAX_CALCULATOR = "http"
    settings.TAX_API_URL = "http://127.0.0.1:9"
    settings.TAX_API_RETRIES = 0
    reset_adapters()
    try:
        pro = plan(price="100.00 USD")
        c = customer(drain)  # US-CA
        sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
        drain()
        invoice = Invoice.objects.get(subscription_id=sub.id)
        assert invoice.status == "draft" and not invoice.tax_calculated and invoice.number is None
        assert "unreachable" in invoice.tax_error and invoice.tax_retry_at is not None
        assert not invoice.lines.filter(kind="tax").exists()  # no invented rate

        with FakeServer(FakeTaxApi) as server:
            settings.TAX_API_URL = server.url
            reset_adapters()
            assert run_job("billing.retry_tax", now=invoice.tax_retry_at) == 1
            drain()
        invoice.refresh_from_db()
        assert invoice.status == "paid" and invoice.tax == Money("7.25", "USD")
    finally:
        reset_adapters()
