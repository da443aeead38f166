"""GET /subscriptions/{id}/events/: every event about the subscription or led to by one of its events."""

from __future__ import annotations

import pytest

from billing import commands as billing
from notifications import commands as notifications
from sharedkernel.models import StoredEvent, TestClock
from sharedkernel.scheduling import advance_test_clock
from subscriptions import commands as subs
from tests.billing.helpers import customer, metered_plan, plan
from tests.conftest import at
from tests.helpers import api_client, staff_user
from tests.notifications.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


def timeline(client, sub_id) -> list[dict]:
    events, url = [], f"/api/v1/subscriptions/{sub_id}/events/"
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        page = response.json()
        events += page["results"]
        url = page["next"]
    return events


def test_a_renewal_declined_through_retries_and_dunning_shows_every_attempt_step_and_mail_in_order(drain, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    clock = TestClock.objects.create(name="dunning", frozen_time=at("2025-06-01 00:00"))
    pro, basic = plan("pro"), plan("basic", price="10.00 USD", tier="basic")
    c = customer(drain, country="GB", region="", test_clock_id=str(clock.pk))
    with Receiver() as receiver:
        endpoint = notifications.register_endpoint(url=receiver.url, events=["billing.PaymentFailed"], customer_id=c.id)
        receiver.secret = endpoint.secret
        # given a subscription, and another of the same customer whose chain shares correlation ids
        sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
        other = subs.subscribe(customer_id=str(c.id), plan_id=str(basic.id))
        drain()
        billing.update_payment_method(customer_id=str(c.id), token="pm_card_chargeDeclined")
        drain()

        # when its renewal declines through the three retries and the three dunning steps
        advance_test_clock(str(clock.pk), at("2025-07-18 00:00"))

    # then its timeline has every attempt and failure, each dunning step, the suspension and the e-mails
    events = timeline(api_client(staff_user()), sub.id)
    types = [e["event_type"] for e in events]
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)
    renewal = types.index("subscriptions.SubscriptionRenewed")
    collecting = [t for t in types[renewal:] if t.startswith(("billing.Payment", "billing.Dunning"))]
    assert collecting == [
        *["billing.PaymentAttempted", "billing.PaymentFailed"] * 4,  # the renewal's charge and its three retries
        "billing.DunningStarted",
        *["billing.DunningEscalated", "billing.PaymentAttempted", "billing.PaymentFailed"] * 2,  # steps 1 and 2
        "billing.DunningExhausted",  # step 3
    ]
    assert types.index("subscriptions.SubscriptionSuspended") > types.index("billing.DunningExhausted")
    assert types[:2] == ["subscriptions.SubscriptionCreated", "subscriptions.PlanSelected"]
    by_id = {e["event_id"]: e for e in events}
    mails = sorted(
        (e["payload"]["template"], by_id[e["causation_id"]]["event_type"])
        for e in events
        if e["event_type"] == "notifications.EmailSent"
    )
    assert mails == sorted(
        [
            ("invoice", "billing.InvoiceFinalized"),  # the first period's invoice and receipt
            ("receipt", "billing.PaymentSucceeded"),
            ("invoice", "billing.InvoiceFinalized"),  # the renewal's
            *[("payment_failed", "billing.PaymentFailed")] * 6,  # the charge, three retries, two dunning charges
            *[("dunning", "billing.DunningEscalated")] * 2,  # the reminders of steps 1 and 2
        ]
    )
    hooks = [e for e in events if e["event_type"] == "notifications.WebhookDispatched"]
    assert len(hooks) == types.count("billing.PaymentFailed")
    # each event names what caused it, and every cause is earlier on the timeline (or outside: the root)
    for e in events:
        if e["causation_id"] in by_id:
            assert by_id[e["causation_id"]]["position"] < e["position"]
    for hook in hooks:
        assert by_id[hook["causation_id"]]["event_type"] == "billing.PaymentFailed"

    # and nothing of the customer's other chains: not their registration, not the other subscription's events
    ids = {e["aggregate_id"] for e in events}
    assert str(other.id) not in ids and "subscriptions.CustomerRegistered" not in types
    other_invoice_events = StoredEvent.objects.filter(
        event_type="billing.InvoiceGenerated", payload__subscription_id=str(other.id)
    )
    assert other_invoice_events.exists()
    assert not ids & {e.aggregate_id for e in other_invoice_events}
    welcome = StoredEvent.objects.filter(event_type="notifications.EmailSent", payload__template="welcome")
    assert welcome.exists() and not {str(w.event_id) for w in welcome} & set(by_id)


def test_the_staff_event_list_is_the_whole_store_in_order(drain):
    c = customer(drain, country="GB", region="")
    subs.subscribe(customer_id=str(c.id), plan_id=str(plan().id))
    drain()
    page = api_client(staff_user()).get("/api/v1/events/").json()
    assert page["count"] == StoredEvent.objects.count()
    positions = [e["position"] for e in page["results"]]
    assert positions == sorted(positions)


def test_a_metered_subscriptions_timeline_has_its_usage_thresholds_and_the_usage_billed_on_renewal(drain):
    clock = TestClock.objects.create(name="usage", frozen_time=at("2025-05-01 00:00"))
    metered = metered_plan()
    c = customer(drain, country="GB", region="", test_clock_id=str(clock.pk))
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(metered.id))
    drain()
    client = api_client(staff_user())
    advance_test_clock(str(clock.pk), at("2025-05-10 00:00"))
    # given usage over what the plan includes
    record = {"subscription": str(sub.id), "metric": "api_calls", "quantity": 1200}
    posted = client.post(
        "/api/v1/usage/", {**record, "timestamp": "2025-05-05T12:00:00Z", "idempotency_key": "k1"}, format="json"
    )
    assert posted.json()["accepted"] == 1
    drain()

    # when the period renews and its usage becomes final
    advance_test_clock(str(clock.pk), at("2025-06-01 02:00"))

    # then the timeline shows the thresholds, the calculated usage and the overage line it put on the renewal invoice
    types = [e["event_type"] for e in timeline(client, sub.id)]
    assert [t for t in types if t.startswith("subscriptions.Usage")] == [
        "subscriptions.UsageThresholdReached",  # 80 %
        "subscriptions.UsageThresholdReached",  # 100 %
        "subscriptions.UsageQuotaExceeded",
        "subscriptions.UsageCalculated",
    ]
    assert types.index("billing.InvoiceLineItemAdded") > types.index("subscriptions.UsageCalculated")
