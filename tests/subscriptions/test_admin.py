"""Staff work in the admin: forms and actions go through commands; nothing edits a status."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sharedkernel.models import DeliveryStatus, EventDelivery, StoredEvent
from subscriptions.models import Customer, Plan, Subscription
from tests.helpers import publish, staff_user
from tests.subscriptions.test_commands_policies_jobs import make_customer, make_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(staff_user("boss"))
    return client


def test_every_admin_page_opens(admin_client):
    plan = make_plan()
    customer = make_customer()
    from subscriptions import commands

    sub = commands.subscribe(customer_id=customer.pk, plan_id=plan.pk, trial=True)
    for url in [
        "/admin/",
        "/admin/subscriptions/plan/",
        "/admin/subscriptions/plan/add/",
        f"/admin/subscriptions/plan/{plan.pk}/change/",
        "/admin/subscriptions/customer/",
        "/admin/subscriptions/customer/add/",
        f"/admin/subscriptions/customer/{customer.pk}/change/",
        "/admin/subscriptions/subscription/",
        "/admin/subscriptions/subscription/add/",
        f"/admin/subscriptions/subscription/{sub.pk}/change/",
        "/admin/sharedkernel/storedevent/",
        "/admin/sharedkernel/eventdelivery/",
        "/admin/sharedkernel/testclock/",
    ]:
        assert admin_client.get(url).status_code == 200, url


def test_plan_added_in_the_admin_goes_through_the_command(admin_client):
    response = admin_client.post(
        "/admin/subscriptions/plan/add/",
        {
            "code": "team-m",
            "name": "Team",
            "tier": "professional",
            "interval": "month",
            "trial_days": 7,
            "prices_text": "99.00 USD\n92.00 EUR",
            "features_text": "SSO\nAudit log",
            "usage_text": "api_calls 50000",
            "overage_text": "api_calls 0.01 USD\napi_calls 0.01 EUR",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    plan = Plan.objects.get(code="team-m")
    assert sorted(str(p) for p in plan.prices) == ["92.00 EUR", "99.00 USD"]
    assert plan.features == ["SSO", "Audit log"] and plan.included_usage == {"api_calls": 50000}
    assert StoredEvent.objects.filter(aggregate_id=str(plan.pk), event_type="subscriptions.PlanCreated").exists()


def test_the_plan_form_keeps_unit_rates_of_up_to_6_decimals(admin_client):
    form = {
        "code": "fine-m",
        "name": "Fine",
        "tier": "professional",
        "interval": "month",
        "trial_days": 0,
        "prices_text": "99.00 USD",
        "features_text": "",
        "usage_text": "api_calls 50000",
        "overage_text": "api_calls 0.0000001 USD",
    }
    refused = admin_client.post("/admin/subscriptions/plan/add/", form)
    assert refused.status_code == 200
    assert "A unit rate in USD has at most 6 decimals." in refused.content.decode()
    assert not Plan.objects.filter(code="fine-m").exists()

    response = admin_client.post("/admin/subscriptions/plan/add/", form | {"overage_text": "api_calls 0.000125 USD"})
    assert response.status_code == 302, response.content.decode()[:2000]
    plan = Plan.objects.get(code="fine-m")
    assert [str(r) for r in plan.overage_rates["api_calls"]] == ["0.000125 USD"]
    page = admin_client.get(f"/admin/subscriptions/plan/{plan.pk}/change/").content.decode()
    assert "api_calls 0.000125 USD" in page


def test_invalid_plan_form_shows_the_aggregates_refusal_next_to_the_field(admin_client):
    response = admin_client.post(
        "/admin/subscriptions/plan/add/",
        {
            "code": "bad",
            "name": "Bad",
            "tier": "basic",
            "interval": "month",
            "trial_days": 0,
            "prices_text": "10.00 USD\n12.00 USD",
            "features_text": "",
            "usage_text": "",
            "overage_text": "",
        },
    )
    assert response.status_code == 200
    assert "One price per currency." in response.content.decode()
    assert not Plan.objects.filter(code="bad").exists()


def test_subscription_status_is_not_an_editable_field(admin_client):
    from subscriptions import commands

    sub = commands.subscribe(customer_id=make_customer().pk, plan_id=make_plan().pk, trial=True)
    page = admin_client.get(f"/admin/subscriptions/subscription/{sub.pk}/change/").content.decode()
    assert 'name="status"' not in page and 'name="price_minor"' not in page


def test_admin_actions_call_commands_and_report_refusals(admin_client):
    from subscriptions import commands

    active = commands.subscribe(customer_id=make_customer("a@example.com").pk, plan_id=make_plan().pk)
    commands.activate_subscription(subscription_id=active.pk)
    pending = commands.subscribe(customer_id=make_customer("b@example.com").pk, plan_id=Plan.objects.get().pk)
    response = admin_client.post(
        "/admin/subscriptions/subscription/",
        {
            "action": "suspend",
            "_selected_action": [str(active.pk), str(pending.pk)],
        },
        follow=True,
    )
    text = response.content.decode()
    assert "Suspend: 1 done." in text and "Only an active subscription can be suspended" in text
    assert Subscription.objects.get(pk=active.pk).status == "suspended"
    assert StoredEvent.objects.filter(
        aggregate_id=str(active.pk), event_type="subscriptions.SubscriptionSuspended"
    ).exists()


def test_change_plan_action_asks_for_the_plan_then_changes_it(admin_client):
    from subscriptions import commands

    pro = make_plan()
    team = make_plan(code="team-m", price="99.00")
    sub = commands.subscribe(customer_id=make_customer().pk, plan_id=pro.pk)
    commands.activate_subscription(subscription_id=sub.pk)
    changelist = "/admin/subscriptions/subscription/"
    ask = admin_client.post(changelist, {"action": "change_plan", "_selected_action": [str(sub.pk)]})
    assert ask.status_code == 200 and "New plan" in ask.content.decode()
    admin_client.post(
        changelist, {"action": "change_plan", "_selected_action": [str(sub.pk)], "apply": "1", "plan": str(team.pk)}
    )
    assert Subscription.objects.get(pk=sub.pk).plan_id == team.pk


def test_customer_added_in_the_admin_is_registered_with_its_event(admin_client):
    response = admin_client.post(
        "/admin/subscriptions/customer/add/",
        {
            "name": "Initech",
            "email": "ap@initech.example",
            "currency": "USD",
            "country": "US",
            "region": "TX",
        },
    )
    assert response.status_code == 302
    customer = Customer.objects.get(name="Initech")
    assert StoredEvent.objects.get(aggregate_id=str(customer.pk)).event_type == "subscriptions.CustomerRegistered"


def test_event_store_is_read_only_and_failed_deliveries_can_be_retried(admin_client, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 1
    event = publish("billing.PaymentSucceeded", {"subscription_id": "x"})  # missing customer_id: the policy fails
    from sharedkernel.bus import DeliveriesFailed, drain

    with pytest.raises(DeliveriesFailed) as failed:  # drain says so: the failure is not quiet
        drain()
    assert "subscriptions.activate_or_resume_when_paid" in str(failed.value) and "KeyError" in str(failed.value)
    delivery = EventDelivery.objects.get(event_id=event.position, handler="subscriptions.activate_or_resume_when_paid")
    assert delivery.status == DeliveryStatus.FAILED and "customer_id" in delivery.last_error
    page = admin_client.get(f"/admin/sharedkernel/eventdelivery/{delivery.pk}/change/").content.decode()
    assert "KeyError" in page
    admin_client.post("/admin/sharedkernel/eventdelivery/", {"action": "retry", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING
    stored = admin_client.get(reverse("admin:sharedkernel_storedevent_change", args=[event.position]))
    assert stored.status_code == 200 and b'name="payload"' not in stored.content
    assert admin_client.get("/admin/sharedkernel/storedevent/add/").status_code == 403
    assert admin_client.post(f"/admin/sharedkernel/storedevent/{event.position}/delete/").status_code == 403
