"""No gateway or tax call while a transaction is open: the runtime check refuses one, the HTTP tax
calculator is asked between the pipeline's transactions, and a worker that dies while asking
leaves the draft for beat's retry_tax."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction

from billing import jobs
from billing.acl.payments import SandboxGateway
from billing.models import Invoice, InvoiceStatus, TaxRate
from billing.ports import reset_adapters, tax_calculator
from billing.values import Jurisdiction
from sharedkernel.outside import CallInsideTransaction
from sharedkernel.values import Money
from subscriptions import commands as subs
from tests.billing.helpers import WorkerDied, customer, plan, tax_worker_dies
from tests.fakes.servers import FakeServer
from tests.helpers import event_types

# -- no outside call inside a transaction ---------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "call",
    [
        lambda: SandboxGateway().charge(
            amount=Money("1.00", "USD"), token="pm_card_visa", idempotency_key="k", description="x"
        ),
        lambda: SandboxGateway().refund(charge_reference="ch", amount=Money("1.00", "USD"), idempotency_key="k"),
        lambda: SandboxGateway().describe("pm_card_visa"),
        lambda: tax_calculator().calculate(
            amount=Money("1.00", "USD"), jurisdiction=Jurisdiction("GB", ""), exempt=False
        ),
        lambda: tax_calculator().calculate_many([(Money("1.00", "USD"), Jurisdiction("GB", ""), False)]),
    ],
    ids=["charge", "refund", "describe", "tax", "tax_many"],
)
def test_a_gateway_or_tax_call_inside_a_transaction_is_refused(call):
    call()  # outside: fine (the test's own wrapper does not count)
    with transaction.atomic(), pytest.raises(CallInsideTransaction):
        call()


@pytest.mark.django_db
def test_the_http_tax_calculator_is_asked_outside_the_pipelines_transactions(drain, settings):
    from tests.fakes.servers import FakeTaxApi

    with FakeServer(FakeTaxApi) as tax_server:
        settings.TAX_API_URL, settings.BILLING_TAX_CALCULATOR = tax_server.url, "http"
        reset_adapters()
        try:
            pro = plan(price="100.00 EUR")
            c = customer(drain, currency="EUR", country="DE", region="")
            subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
            drain()  # the check raises inside any transaction the pipeline opened
        finally:
            reset_adapters()
    invoice = Invoice.objects.get(customer_id=c.id)
    assert invoice.status == InvoiceStatus.PAID and invoice.tax == Money("19.00", "EUR")
    assert len(tax_server.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_a_worker_dying_before_its_tax_quote_is_recorded_leaves_the_draft_to_retry_tax(drain, settings):
    # given a tax calculator whose worker dies while asking it
    with tax_worker_dies(settings):
        TaxRate.objects.create(country="GB", region="", rate="0.20", name="VAT")
        pro = plan(price="30.00 USD")
        c = customer(drain, country="GB", region="")
        subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
        with pytest.raises(WorkerDied):
            drain()
    invoice = Invoice.objects.get(customer_id=c.id)
    assert invoice.status == InvoiceStatus.DRAFT and not invoice.tax_calculated and invoice.tax_retry_at is not None
    # when billing.retry_tax comes round
    assert jobs.retry_tax(invoice.tax_retry_at + timedelta(seconds=1), None) == 1
    drain()
    # then the draft was taxed once and collected
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and invoice.tax == Money("6.00", "USD")
    assert event_types(invoice.id).count("billing.TaxCalculated") == 1
