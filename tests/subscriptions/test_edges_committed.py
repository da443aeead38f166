"""Every Subscriptions edge that records an event, committed for real (no wrapping test transaction):
the API, the customer pages, sign-up confirmation, the admin's forms and actions, and the beat jobs.

Each test asserts what its user sees (status, page, body) and what was stored (events, rows).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from billing import commands as billing
from sharedkernel.models import StoredEvent
from sharedkernel.scheduling import run_job
from sharedkernel.values import Money
from subscriptions import commands
from subscriptions.models import Customer, Plan, Subscription
from tests.billing.helpers import plan
from tests.helpers import USD_PLAN, api_client, event_types

pytestmark = pytest.mark.django_db(transaction=True)


def with_card(customer_id, drain) -> None:
    billing.update_payment_method(customer_id=str(customer_id), token="pm_card_visa")
    drain()


def stored(event_type: str, aggregate_id) -> list[StoredEvent]:
    return list(StoredEvent.objects.filter(event_type=event_type, aggregate_id=str(aggregate_id)))


# -- API -----------------------------------------------------------------------------------


def test_api_plan_lifecycle_customer_and_subscription_commands(staff, drain):
    # plans: define, archive, restore
    created = staff.post("/api/v1/plans/", USD_PLAN, format="json")
    assert created.status_code == 201, created.content
    plan_id = created.json()["id"]
    assert staff.post(f"/api/v1/plans/{plan_id}/archive/").json()["archived"] is True
    assert staff.post(f"/api/v1/plans/{plan_id}/restore/").json()["archived"] is False
    assert event_types(plan_id) == [
        "subscriptions.PlanCreated",
        "subscriptions.PlanArchived",
        "subscriptions.PlanRestored",
    ]
    enterprise = plan(code="ent", tier="enterprise", price="499.00 USD")

    # customers: register (with the API key shown once)
    response = staff.post(
        "/api/v1/customers/", {"name": "Ada", "email": "ada@example.com", "currency": "USD", "country": "GB"}
    )
    assert response.status_code == 201 and response.json()["api_key"]
    customer = response.json()
    assert event_types(customer["id"]) == ["subscriptions.CustomerRegistered"]
    drain()
    with_card(customer["id"], drain)
    ada = api_client()
    ada.credentials(HTTP_AUTHORIZATION=f"Token {customer['api_key']}")

    # subscriptions: subscribe as the customer, suspend and resume as staff
    sub = ada.post("/api/v1/subscriptions/", {"plan": plan_id}, format="json")
    assert sub.status_code == 201 and sub.json()["status"] == "pending_payment", sub.content
    sub_id = sub.json()["id"]
    drain()  # first invoice paid: active
    assert staff.get(f"/api/v1/subscriptions/{sub_id}/").json()["status"] == "active"
    assert staff.post(f"/api/v1/subscriptions/{sub_id}/suspend/", {}, format="json").json()["status"] == "suspended"
    assert staff.post(f"/api/v1/subscriptions/{sub_id}/resume/", {}, format="json").json()["status"] == "active"

    # an enterprise change waits for staff (202), who approve it; a second one is declined
    asked = ada.post(f"/api/v1/subscriptions/{sub_id}/change-plan/", {"plan": str(enterprise.pk)}, format="json")
    assert asked.status_code == 202, asked.content
    approved = staff.post(f"/api/v1/subscriptions/{sub_id}/approve-plan-change/")
    assert approved.status_code == 200 and approved.json()["plan"] == str(enterprise.pk)
    back = staff.post(f"/api/v1/subscriptions/{sub_id}/change-plan/", {"plan": plan_id}, format="json")
    assert back.status_code == 200 and back.json()["plan"] == plan_id
    ada.post(f"/api/v1/subscriptions/{sub_id}/change-plan/", {"plan": str(enterprise.pk)}, format="json")
    declined = staff.post(f"/api/v1/subscriptions/{sub_id}/decline-plan-change/")
    assert declined.status_code == 200 and declined.json()["plan"] == plan_id

    # usage is counted, then the customer cancels at period end
    usage = {"subscription": sub_id, "metric": "api_calls", "quantity": 5, "idempotency_key": "k1"}
    body = ada.post("/api/v1/usage/", {**usage, "timestamp": timezone.now().isoformat()}, format="json").json()
    assert body == {"accepted": 1, "duplicates": 0, "errors": []}
    cancelled = ada.post(f"/api/v1/subscriptions/{sub_id}/cancel/", {"at_period_end": True}, format="json")
    assert cancelled.status_code == 200 and cancelled.json()["cancel_at_period_end"] is True

    types = event_types(sub_id)
    for expected in (
        "subscriptions.SubscriptionCreated",
        "subscriptions.SubscriptionActivated",
        "subscriptions.SubscriptionSuspended",
        "subscriptions.SubscriptionResumed",
        "subscriptions.PlanChangeRequested",
        "subscriptions.PlanChanged",
        "subscriptions.PlanChangeDeclined",
        "subscriptions.SubscriptionCancellationScheduled",
    ):
        assert expected in types, expected
    [recorded] = StoredEvent.objects.filter(event_type="subscriptions.UsageRecorded")
    assert recorded.payload["accepted"] == 1
    drain()
    assert Subscription.objects.get(pk=sub_id).plan_id == Plan.objects.get(code=USD_PLAN["code"]).pk


# -- customer pages and sign-up ---------------------------------------------------------------


def test_sign_up_then_the_confirmation_link_makes_a_customer(client, drain):
    email = f"grace-{uuid.uuid4().hex[:8]}@example.com"  # allauth rate-limits mail per address, in the shared cache
    response = client.post(
        "/accounts/signup/",
        {
            "email": email,
            "password1": "pw-Grace-12345",
            "password2": "pw-Grace-12345",
            "name": "Grace Hopper",
            "currency": "USD",
            "country": "us",
            "region": "ny",
        },
    )
    assert response.status_code == 302
    assert not Customer.objects.exists()
    link = re.search(r"http://[^\s]+/accounts/confirm-email/([^\s/]+)/", mail.outbox[-1].body)
    confirmed = client.post(f"/accounts/confirm-email/{link.group(1)}/")
    assert confirmed.status_code == 302
    customer = Customer.objects.get(email=email)
    assert (customer.name, customer.country, customer.region) == ("Grace Hopper", "US", "NY")
    assert event_types(customer.pk) == ["subscriptions.CustomerRegistered"]


@pytest.fixture
def customer_client(client, drain, django_user_model):
    user = django_user_model.objects.create_user(username="ada", email="ada@example.com", password="pw-Ada-12345")
    customer, _ = commands.register_customer(
        name="Ada", email="ada@example.com", currency="USD", country="GB", user=user
    )
    drain()
    with_card(customer.pk, drain)
    client.force_login(user)
    client.customer = customer
    return client


def test_customer_pages_subscribe_change_plan_cancel_and_resume(customer_client, drain):
    basic = plan(code="basic", tier="basic", price="10.00 USD")
    pro = plan(code="pro", price="30.00 USD")
    # subscribe
    response = customer_client.post("/app/subscribe/basic/", {"currency": "USD"}, follow=True)
    assert response.status_code == 200 and "You subscribed to Basic" in response.content.decode()
    sub = Subscription.objects.get(customer=customer_client.customer)
    assert sub.plan_id == basic.pk
    drain()
    # change plan (upgrade, prorated by Billing)
    response = customer_client.post(f"/app/subscriptions/{sub.pk}/change-plan/", {"plan": str(pro.pk)}, follow=True)
    assert "You are now on Pro" in response.content.decode()
    drain()
    # cancel at period end, then withdraw it
    sub.refresh_from_db()
    response = customer_client.post(
        f"/app/subscriptions/{sub.pk}/cancel/",
        {"when": "period_end", "reason": "budget", "version": sub.version},
        follow=True,
    )
    assert "will end on" in response.content.decode()
    response = customer_client.post(f"/app/subscriptions/{sub.pk}/resume/", follow=True)
    assert "continues" in response.content.decode()
    sub.refresh_from_db()
    assert (sub.plan_id, sub.status, sub.cancel_at_period_end) == (pro.pk, "active", False)
    types = event_types(sub.pk)
    for expected in (
        "subscriptions.SubscriptionCreated",
        "subscriptions.PlanChanged",
        "subscriptions.SubscriptionCancellationScheduled",
        "subscriptions.SubscriptionResumed",
    ):
        assert expected in types, expected


# -- admin -------------------------------------------------------------------------------------


def test_admin_plan_forms_and_actions(admin):
    form = {
        "code": "team-m",
        "name": "Team",
        "tier": "professional",
        "interval": "month",
        "trial_days": 7,
        "prices_text": "99.00 USD",
        "features_text": "SSO",
        "usage_text": "",
        "overage_text": "",
    }
    assert admin.post("/admin/subscriptions/plan/add/", form).status_code == 302
    team = Plan.objects.get(code="team-m")
    changed = admin.post(f"/admin/subscriptions/plan/{team.pk}/change/", {**form, "name": "Team Plus"})
    assert changed.status_code == 302
    for action in ("archive", "restore"):
        response = admin.post(
            "/admin/subscriptions/plan/", {"action": action, "_selected_action": [team.pk]}, follow=True
        )
        assert f"{action.title()}: 1 done" in response.content.decode()
    team.refresh_from_db()
    assert (team.name, team.archived) == ("Team Plus", False)
    assert event_types(team.pk) == [
        "subscriptions.PlanCreated",
        "subscriptions.PlanUpdated",
        "subscriptions.PlanArchived",
        "subscriptions.PlanRestored",
    ]


def test_admin_customer_and_subscription_forms_and_every_subscription_action(admin, drain):
    response = admin.post(
        "/admin/subscriptions/customer/add/",
        {"name": "Ada", "email": "ada@example.com", "currency": "USD", "country": "GB", "region": ""},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    customer = Customer.objects.get(email="ada@example.com")
    assert event_types(customer.pk) == ["subscriptions.CustomerRegistered"]
    drain()
    with_card(customer.pk, drain)
    pro = plan(code="pro", price="30.00 USD")
    enterprise = plan(code="ent", tier="enterprise", price="499.00 USD")

    response = admin.post(
        "/admin/subscriptions/subscription/add/", {"customer": customer.pk, "plan": pro.pk, "currency": ""}
    )
    assert response.status_code == 302
    sub = Subscription.objects.get(customer=customer)
    drain()

    def act(action, **extra):
        page = admin.post(
            "/admin/subscriptions/subscription/", {"action": action, "_selected_action": [sub.pk], **extra}, follow=True
        )
        assert page.status_code == 200
        drain()
        sub.refresh_from_db()
        return page.content.decode()

    assert "Suspend: 1 done" in act("suspend") and sub.status == "suspended"
    assert "Resume: 1 done" in act("resume") and sub.status == "active"
    assert "Change plan: 1 done" in act("change_plan", apply="1", plan=enterprise.pk) and sub.plan_id == enterprise.pk
    commands.change_plan(subscription_id=sub.pk, plan_id=pro.pk, by_staff=True)
    commands.change_plan(subscription_id=sub.pk, plan_id=enterprise.pk)  # asks for approval
    assert "Approve: 1 done" in act("approve_plan_change") and sub.plan_id == enterprise.pk
    commands.change_plan(subscription_id=sub.pk, plan_id=pro.pk, by_staff=True)
    commands.change_plan(subscription_id=sub.pk, plan_id=enterprise.pk)
    assert "Decline: 1 done" in act("decline_plan_change") and sub.pending_plan_id is None
    assert "Schedule cancellation: 1 done" in act("cancel_at_period_end") and sub.cancel_at_period_end
    assert "Cancel: 1 done" in act("cancel_now") and sub.status == "cancelled"
    types = event_types(sub.pk)
    for expected in (
        "subscriptions.SubscriptionSuspended",
        "subscriptions.SubscriptionResumed",
        "subscriptions.PlanChanged",
        "subscriptions.PlanChangeDeclined",
        "subscriptions.SubscriptionCancellationScheduled",
        "subscriptions.SubscriptionCancelled",
    ):
        assert expected in types, expected


# -- beat jobs, on real time ------------------------------------------------------------------------


def test_beat_jobs_remind_expire_renew_and_calculate_usage(drain, settings):
    pro = plan(
        code="pro",
        price="30.00 USD",
        trial_days=14,
        included_usage={"api_calls": 10},
        overage_rates={"api_calls": [Money("0.01", "USD")]},
    )
    customer, _ = commands.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB")
    drain()
    with_card(customer.pk, drain)
    sub = commands.subscribe(customer_id=customer.pk, plan_id=pro.pk, trial=True)
    drain()
    start = timezone.now()

    assert run_job("subscriptions.remind_trials_ending", now=start + timedelta(days=12)) == 1
    assert stored("subscriptions.TrialEndingSoon", sub.pk)
    assert run_job("subscriptions.expire_trials", now=start + timedelta(days=15)) == 1
    drain()
    sub.refresh_from_db()
    assert sub.status == "active" and stored("subscriptions.TrialExpired", sub.pk)

    renew_at = sub.current_period_end + timedelta(minutes=1)
    assert run_job("subscriptions.renew_subscriptions", now=renew_at) == 1
    assert run_job("subscriptions.renew_subscriptions", now=renew_at) == 0  # a second beat finds nothing due
    assert stored("subscriptions.SubscriptionRenewed", sub.pk)
    drain()
    assert run_job("subscriptions.calculate_usage", now=renew_at + timedelta(days=2)) >= 1
    [calculated] = StoredEvent.objects.filter(event_type="subscriptions.UsageCalculated")
    assert calculated.payload["subscription_id"] == str(sub.pk)
    drain()
