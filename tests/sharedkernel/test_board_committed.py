"""Staff retry failed (or stuck) deliveries from the board and from a timeline, committed for real:
the board's retry re-runs a handler's failed deliveries; a timeline's retry button requeues one
delivery and the real worker then handles it. Both are staff only, POST only, and CSRF-protected."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import BillingAccount
from sharedkernel.models import DeliveryStatus, EventDelivery, StoredEvent
from subscriptions import commands as subs
from tests.conftest import wait_until_handled
from tests.helpers import staff_user


def _register_with_a_failed_opening():
    customer, _ = subs.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB")
    opening = EventDelivery.objects.get(handler="billing.open_billing_account")
    EventDelivery.objects.filter(pk=opening.pk).update(status=DeliveryStatus.FAILED, attempts=5, last_error="boom")
    return customer, opening


@pytest.mark.django_db(transaction=True)
def test_staff_retry_a_policys_failed_deliveries_from_the_board(client, drain):
    # given a customer whose billing account could not be opened (the delivery failed)
    customer, opening = _register_with_a_failed_opening()
    client.force_login(staff_user("boss"))

    # the board shows the policy as a pink hot spot, with its figures and a retry button
    html = client.get("/staff/board/").content.decode()
    sticky = html.split('data-handler="billing.open_billing_account"', 1)[0].rsplit("<details", 1)[1]
    assert "policy hot" in sticky
    assert "0 pending · 1 failed" in html
    assert 'name="handler" value="billing.open_billing_account"' in html
    assert "csrfmiddlewaretoken" in html

    # when staff press it
    page = client.post("/staff/board/retry/", {"handler": "billing.open_billing_account"}, follow=True)

    # then the failed delivery is queued again, and handled
    assert "1 failed delivery(ies) of billing.open_billing_account queued for retry." in page.content.decode()
    opening.refresh_from_db()
    assert (opening.status, opening.attempts) == (DeliveryStatus.RETRYING, 0)
    drain()
    opening.refresh_from_db()
    assert opening.status == DeliveryStatus.DONE
    assert BillingAccount.objects.filter(pk=customer.pk).exists()
    assert StoredEvent.objects.filter(event_type="billing.BillingAccountOpened", aggregate_id=str(customer.pk))
    assert (
        "policy hot"
        not in client.get("/staff/board/")
        .content.decode()
        .split('data-handler="billing.open_billing_account"', 1)[0]
        .rsplit("<details", 1)[1]
    )


@pytest.mark.django_db(transaction=True)
def test_the_retry_endpoints_are_staff_only_post_only_and_need_the_csrf_token(client, drain):
    _, opening = _register_with_a_failed_opening()
    posts = {
        "/staff/board/retry/": {"handler": "billing.open_billing_account"},
        "/staff/timeline/retry/": {"delivery": opening.pk},
    }
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_user("eve", password="x"))
    for url, body in posts.items():
        assert client.post(url, body).status_code == 302  # to the staff login
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(staff_user("boss"))
    for url, body in posts.items():
        assert guarded.get(url).status_code == 405
        assert guarded.post(url, body).status_code == 403  # no CSRF token
    opening.refresh_from_db()
    assert opening.status == DeliveryStatus.FAILED  # nothing was retried
    # a handler that does not exist is refused with a message, nothing changes
    client.force_login(staff_user("boss2"))
    page = client.post("/staff/board/retry/", {"handler": "nobody.handles_this"}, follow=True)
    assert "No handler named" in page.content.decode()


@pytest.mark.flow
def test_a_failed_delivery_retried_from_the_timeline_is_handled_by_the_worker(flow, client, settings):
    # given a failed delivery the worker never saw (dispatch off while it is set up)
    settings.EVENT_DISPATCH = "manual"
    customer, opening = _register_with_a_failed_opening()
    settings.EVENT_DISPATCH = "celery"
    EventDelivery.objects.exclude(pk=opening.pk).update(dispatch_after=timezone.now())  # the relay sends them
    client.force_login(staff_user("boss"))
    url = f"/staff/timeline/?customer={customer.pk}"

    # the timeline shows it as a pink hot spot with a retry button
    html = client.get(url).content.decode()
    assert f'data-delivery="{opening.pk}" data-status="failed">' in html
    assert f'<li class="hot" title="boom" data-delivery="{opening.pk}"' in html
    assert f'name="delivery" value="{opening.pk}"' in html

    # when staff press retry
    page = client.post("/staff/timeline/retry/", {"delivery": opening.pk, "next": url}, follow=True)
    assert "queued for retry" in page.content.decode()

    # then the worker handles it: the account is opened and the timeline shows the handler done
    wait_until_handled()
    opening.refresh_from_db()
    assert opening.status == DeliveryStatus.DONE
    assert BillingAccount.objects.filter(pk=customer.pk).exists()
    html = client.get(url).content.decode()
    assert f'data-delivery="{opening.pk}" data-status="done">billing.open_billing_account: done at' in html
    assert 'data-event="billing.BillingAccountOpened"' in html


@pytest.mark.django_db(transaction=True)
def test_a_stuck_pending_delivery_is_made_due_now_from_the_timeline_and_a_done_one_is_left_alone(client, drain):
    customer, _ = subs.register_customer(name="Bo", email="bo@example.com", currency="USD", country="GB")
    welcome = EventDelivery.objects.get(handler="notifications.welcome")
    later = welcome.dispatch_after
    assert later > timezone.now()  # the relay would pick it up only then
    client.force_login(staff_user("boss"))
    url = f"/staff/timeline/?customer={customer.pk}"
    page = client.post("/staff/timeline/retry/", {"delivery": welcome.pk, "next": url}, follow=True)
    assert "Delivery to notifications.welcome of" in page.content.decode()
    welcome.refresh_from_db()
    assert welcome.status == DeliveryStatus.PENDING and welcome.dispatch_after < later
    drain()
    page = client.post("/staff/timeline/retry/", {"delivery": welcome.pk, "next": url}, follow=True)
    assert "was already handled; nothing to retry" in page.content.decode()
    # an outside address in "next" is not followed
    response = client.post("/staff/timeline/retry/", {"delivery": welcome.pk, "next": "https://evil.example/"})
    assert response["Location"] == "/staff/timeline/"
