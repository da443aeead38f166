"""The demo a new user logs into shows what the product does (issue 13)."""

from __future__ import annotations

import socket

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing.models import BillingAccount, CreditEntry, Invoice
from config import demo
from notifications.models import Notification, WebhookDelivery, WebhookEndpoint
from subscriptions.models import Customer, Subscription

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_demo_logins_show_real_billing_a_trial_and_dunning():
    # given the demo, seeded as `make run` seeds it (fewer random customers, five months)
    demo.seed(months=5, customers=3, base=f"http://127.0.0.1:{_free_port()}", log=lambda *_: None)

    # then demo@example.com has real billing
    customer = Customer.objects.get(email="demo@example.com")
    invoices = list(Invoice.objects.filter(customer_id=customer.pk).prefetch_related("lines"))
    paid = [i for i in invoices if i.status == "paid"]
    # given months of history: paid invoices, one of them prorated by the upgrade, and usage overage
    assert len(paid) >= 4
    kinds = {line.kind for i in paid for line in i.lines.all()}
    assert {"plan", "proration", "usage", "tax"} <= kinds
    # a credit: the downgrade's unused time and staff's goodwill credit
    sources = set(CreditEntry.objects.filter(customer_id=customer.pk).values_list("source", flat=True))
    assert {"proration", "grant"} <= sources
    assert BillingAccount.objects.get(pk=customer.pk).credit("EUR").is_positive()
    # a webhook endpoint with deliveries, and e-mails in the log
    endpoint = WebhookEndpoint.objects.get(customer_id=customer.pk)
    assert endpoint.deliveries.count() >= 4
    assert Notification.objects.filter(customer_id=customer.pk, template="receipt").count() >= 4

    # and the other printed logins show a running trial and a declined card in dunning
    assert set(demo.DEMO_LOGINS) == {"demo@example.com", "trial@example.com", "dunning@example.com"}
    assert Subscription.objects.get(customer__email="trial@example.com").status == "trialing"
    dunning = Customer.objects.get(email="dunning@example.com")
    assert Subscription.objects.get(customer=dunning).status == "pending_payment"
    assert Invoice.objects.filter(customer_id=dunning.pk, status="finalized").exists()

    # and the demo customer's pages show its invoices and a valid PDF
    client = Client()
    client.force_login(get_user_model().objects.get(email="demo@example.com"))
    page = client.get("/billing/invoices/").content.decode()
    assert page.count("INV-") >= 4
    paid = Invoice.objects.filter(customer_id=Customer.objects.get(email="demo@example.com").pk, status="paid").first()
    pdf = client.get(f"/billing/invoices/{paid.pk}/pdf/")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")


def test_after_seed_demo_the_demo_customers_webhook_deliveries_are_delivered(settings):
    # given the address guard as strict as in production
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    settings.WEBHOOK_ALLOWED_ORIGINS = []
    settings.DEMO_WEBHOOK_RECEIVER = False
    # when the demo is seeded (no web server runs meanwhile)
    demo.seed(months=2, customers=0, base=f"http://127.0.0.1:{_free_port()}", log=lambda *_: None)

    # then every delivery to the demo customer's endpoint was received (200, signature checked)
    customer = Customer.objects.get(email="demo@example.com")
    deliveries = WebhookDelivery.objects.filter(endpoint__customer_id=customer.pk)
    assert deliveries.count() >= 2
    assert set(deliveries.values_list("status", "last_status_code")) == {("succeeded", 200)}
    # and the guard is as strict as before afterwards
    assert (settings.WEBHOOK_ALLOWED_ORIGINS, settings.DEMO_WEBHOOK_RECEIVER) == ([], False)
    # and the customer's webhook page shows them delivered, none retrying
    client = Client()
    client.force_login(get_user_model().objects.get(email="demo@example.com"))
    page = client.get("/notifications/webhooks/").content.decode()
    assert page.count('class="badge succeeded"') == deliveries.count() and "Retrying" not in page
