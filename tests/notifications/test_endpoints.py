"""Managing webhook endpoints: an endpoint disabled after days of failures is enabled again by its owner
(page or API) with a fresh failure clock; owners disable and remove their own endpoints, nobody else's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from notifications import commands, webhooks
from notifications.models import WebhookEndpoint
from subscriptions import commands as subs
from tests.helpers import api_client
from tests.notifications.helpers import dead_endpoint

pytestmark = pytest.mark.django_db


def owner(drain, username="owner"):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", "pw-Owner-123456")
    customer, _ = subs.register_customer(
        name=username.title(), email=f"{username}@example.com", currency="USD", country="GB", user=user
    )
    drain()
    return customer, user


def test_the_owner_enables_a_disabled_endpoint_again_with_a_fresh_failure_clock(drain, client, settings):
    # given an endpoint disabled after three days of failures (nothing listens on port 9)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    customer, user = owner(drain)
    endpoint, delivery = dead_endpoint(customer, failing_for=timedelta(days=3))
    webhooks.attempt(delivery.pk, now=timezone.now())
    endpoint.refresh_from_db()
    assert not endpoint.active
    client.force_login(user)
    page = client.get("/notifications/webhooks/").content.decode()
    assert "disabled" in page and "Enable again" in page and "Redeliver" not in page

    # when the owner enables it again from the page
    answer = client.post(f"/notifications/webhooks/{endpoint.pk}/enable/", follow=True).content.decode()

    # then it is active, and one more failure does not disable it at once
    assert "is enabled again" in answer
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.failing_since is None and endpoint.disabled_reason == ""
    commands.redeliver(delivery_id=delivery.pk)
    webhooks.attempt(delivery.pk, now=timezone.now())
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.failing_since is not None


def test_owners_disable_and_remove_their_own_endpoints_only(drain, client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    customer, user = owner(drain)
    _, stranger = owner(drain, "stranger")
    endpoint = commands.register_endpoint(url="http://127.0.0.1:9/hooks", events=["*"], customer_id=customer.id)

    client.force_login(stranger)
    for verb in ("disable", "enable", "remove"):
        assert client.post(f"/notifications/webhooks/{endpoint.pk}/{verb}/").status_code == 404
    assert api_client(stranger).post(f"/api/v1/webhook-endpoints/{endpoint.pk}/disable/").status_code == 404

    api = api_client(user)
    disabled = api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/disable/")
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    again = api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/disable/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"
    assert api.post(f"/api/v1/webhook-endpoints/{endpoint.pk}/enable/").json()["active"] is True

    client.force_login(user)
    answer = client.post(f"/notifications/webhooks/{endpoint.pk}/remove/", follow=True).content.decode()
    assert "is removed" in answer and not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_staff_enable_and_disable_from_the_admin_without_editing_the_flags(drain, admin_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    customer, _ = owner(drain)
    endpoint = commands.register_endpoint(url="http://127.0.0.1:9/hooks", events=["*"], customer_id=customer.id)
    change = admin_client.get(f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert 'name="active"' not in change  # enabling goes through the command (fresh failure clock)
    admin_client.post(
        "/admin/notifications/webhookendpoint/", {"action": "disable", "_selected_action": [str(endpoint.pk)]}
    )
    endpoint.refresh_from_db()
    assert not endpoint.active and "staff" in endpoint.disabled_reason
    admin_client.post(
        "/admin/notifications/webhookendpoint/", {"action": "enable", "_selected_action": [str(endpoint.pk)]}
    )
    endpoint.refresh_from_db()
    assert endpoint.active


def test_the_notification_log_filters_by_customer(drain, admin_client):
    ada, _ = owner(drain, "ada")
    owner(drain, "bob")
    page = admin_client.get(f"/admin/notifications/notification/?customer={ada.id}").content.decode()
    assert "ada@example.com" in page and "bob@example.com" not in page
    assert "By customer" in page
    assert admin_client.get("/admin/notifications/notification/?customer=nope").status_code == 200
