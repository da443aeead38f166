"""Price migrations end to end on a test clock: API → beat job → events → the real worker → billing."""

from __future__ import annotations

import pytest

from notifications.models import Notification
from sharedkernel.models import StoredEvent
from sharedkernel.scheduling import run_job
from subscriptions import commands
from subscriptions.models import Subscription
from tests.conftest import at, wait_until_handled
from tests.flows.api import advance, invoices, make_plan, money, new_customer, two_beats_schedule_price_changes

pytestmark = pytest.mark.flow


def customers_on_clock(staff, when: str, names: list[str]):
    clock = staff.post("/api/v1/test-clocks/", {"frozen_time": when}, format="json").json()
    people = []
    for name in names:
        people.append(new_customer(staff, name, clock))
    wait_until_handled()
    for customer in people:
        put = staff.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_visa"}, format="json")
        assert put.status_code == 200, put.content
    return clock, people


def scheduled_events(sub_id) -> list[StoredEvent]:
    return list(StoredEvent.objects.filter(event_type="subscriptions.PriceChangeScheduled", aggregate_id=sub_id))


def test_a_rise_is_noticed_once_billed_after_the_date_and_never_for_the_grandfathered_or_who_cancelled(
    staff, smtp_sink
):
    # given three monthly subscribers on version 1 (30.00) and a version 2 at 40.00
    pro = make_plan(staff, "pro", "30.00")
    clock, (ada, bob, cy) = customers_on_clock(staff, "2025-01-31T10:00:00Z", ["Ada", "Bob", "Cy"])
    subs = []
    for customer in (ada, bob, cy):
        sub = staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": pro["id"]}, format="json")
        assert sub.status_code == 201, sub.content
        subs.append(sub.json()["id"])
    wait_until_handled()
    a, b, c = subs
    v2 = staff.post(f"/api/v1/plans/{pro['id']}/versions/", {"prices": [money("40.00")]}, format="json")
    assert v2.status_code == 201 and v2.json()["version"] == 2

    # when staff draft a migration of Ada and Cy (Bob stays grandfathered) from Feb 1 and preview it
    drafted = staff.post(
        "/api/v1/price-migrations/",
        {"plan": pro["id"], "to_version": 2, "effective_from": "2025-02-01T00:00:00Z", "subscriptions": [a, c]},
        format="json",
    )
    assert drafted.status_code == 201, drafted.content
    migration = drafted.json()
    assert migration["status"] == "draft"
    preview = staff.get(f"/api/v1/price-migrations/{migration['id']}/preview/").json()
    # a rise waits for the 30 days' notice: the first renewal on/after Mar 2 is Mar 31
    assert preview["subscriptions"] == 2 and preview["left_out"] == []
    assert preview["mrr_change"] == [money("20.00")]
    assert preview["first_effective_at"] == preview["last_effective_at"] == "2025-03-31T10:00:00Z"

    # started, then interrupted after one batch of one (paused), resumed, and the beat runs twice
    assert staff.post(f"/api/v1/price-migrations/{migration['id']}/start/").json()["status"] == "running"
    assert commands.schedule_price_change_batch(migration_id=migration["id"], now=at("2025-01-31 10:00"), limit=1) == 1
    assert staff.post(f"/api/v1/price-migrations/{migration['id']}/pause/").json()["status"] == "paused"
    assert run_job("subscriptions.schedule_price_changes") == 0  # paused: nothing more is scheduled
    assert staff.post(f"/api/v1/price-migrations/{migration['id']}/resume/").json()["status"] == "running"
    two_beats_schedule_price_changes()
    state = staff.get(f"/api/v1/price-migrations/{migration['id']}/").json()
    assert state["status"] == "done"
    assert state["counts"] == {"scheduled": 2, "left_out": 0, "moved": 0, "cancelled": 0}

    # then each moved subscription was scheduled exactly once and shows the coming price
    assert [len(scheduled_events(s)) for s in (a, b, c)] == [1, 0, 1]
    # one essential notice each (Bob none), with the old and new price, the date and the way out
    notices = Notification.objects.filter(template="price_change").order_by("email")
    assert [(n.email, n.status) for n in notices] == [("ada@example.com", "sent"), ("cy@example.com", "sent")]
    ada_mail = [m for m in smtp_sink.to("ada@example.com") if "price changes" in m["Subject"]]
    assert [m["Subject"] for m in ada_mail] == ["Your Pro price changes to 40.00 USD on 2025-03-31"]
    text = smtp_sink.text(ada_mail[0])
    assert "30.00 USD" in text and f"/subscriptions/{a}/cancel/" in text and "change-plan" in text
    shown = staff.get(f"/api/v1/subscriptions/{a}/").json()
    assert shown["scheduled_price_change"] == {
        "price": money("40.00"),
        "plan_version": 2,
        "effective_at": "2025-03-31T10:00:00Z",
    }

    # Cy cancels before the date: the change is withdrawn
    cancelled = staff.post(f"/api/v1/subscriptions/{c}/cancel/", {"at_period_end": True}, format="json")
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["scheduled_price_change"] is None

    # the renewal before the date keeps 30.00; the one on the date bills Ada 40.00, Bob still 30.00
    upcoming = staff.get(f"/api/v1/subscriptions/{a}/upcoming-invoice/").json()
    assert upcoming["lines"][0]["amount"] == money("30.00")  # the next renewal is before the date
    advance(staff, clock, "2025-02-28T10:00:01Z")
    upcoming = staff.get(f"/api/v1/subscriptions/{a}/upcoming-invoice/").json()
    assert upcoming["lines"][0]["amount"] == money("40.00") and "version 2" in upcoming["lines"][0]["description"]
    advance(staff, clock, "2025-03-31T10:00:01Z")
    ada_bills = [(i["period_start"][:10], i["total"], i["status"]) for i in invoices(staff, a)]
    assert ada_bills == [
        ("2025-01-31", money("30.00"), "paid"),
        ("2025-02-28", money("30.00"), "paid"),
        ("2025-03-31", money("40.00"), "paid"),
    ]
    assert [i["total"] for i in invoices(staff, b)] == [money("30.00")] * 3
    assert [i["total"] for i in invoices(staff, c)] == [money("30.00")]  # ended Feb 28, never the new price
    last_line = invoices(staff, a)[-1]["lines"][0]["description"]
    assert "version 2" in last_line
    sub = Subscription.objects.get(pk=a)
    assert (sub.plan_version, sub.price.amount, sub.scheduled_price) == (2, 40, None)
    changed = StoredEvent.objects.get(event_type="subscriptions.PriceChanged", aggregate_id=a)
    assert changed.payload["plan"]["version"] == 2 and changed.payload["new_price"] == money("40.00")
    state = staff.get(f"/api/v1/price-migrations/{migration['id']}/").json()
    assert state["counts"] == {"scheduled": 0, "left_out": 0, "moved": 1, "cancelled": 1}
