"""The admin pages of a customer, subscription, invoice and payment link to the staff timeline,
and the link opens that subscription's (or customer's) events."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from billing.models import Invoice, Payment
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan

pytestmark = pytest.mark.django_db


def test_admin_pages_link_to_the_event_timeline(client, drain):
    pro = plan(code="pro", price="30.00 USD")
    c = customer(drain, country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    invoice = Invoice.objects.get(subscription_id=sub.id)
    payment = Payment.objects.get(invoice_id=invoice.id)
    client.force_login(get_user_model().objects.create_superuser("boss", "boss@example.com", "x"))

    pages = {
        f"/admin/subscriptions/customer/{c.id}/change/": f"customer={c.id}",
        f"/admin/subscriptions/subscription/{sub.id}/change/": f"subscription={sub.id}",
        f"/admin/billing/invoice/{invoice.id}/change/": f"subscription={sub.id}",
        f"/admin/billing/payment/{payment.id}/change/": f"subscription={sub.id}",
    }
    for page, query in pages.items():
        html = client.get(page).content.decode()
        link = re.search(r'href="(/staff/timeline/\?[^"]+)"', html)
        assert link and link.group(1).replace("&amp;", "&") == f"/staff/timeline/?{query}", page
        timeline = client.get(link.group(1).replace("&amp;", "&"))
        assert timeline.status_code == 200
        assert "subscriptions.CustomerRegistered" in timeline.content.decode() or "SubscriptionCreated" in (
            timeline.content.decode()
        )
