"""Usage ingestion: dedup, per-record errors, thresholds once, late usage within grace."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing import commands as billing
from sharedkernel.clock import FixedClock
from sharedkernel.models import StoredEvent, TestClock
from sharedkernel.values import UnitRate
from subscriptions import commands as subs
from subscriptions.models import UsageRecord
from tests.billing.helpers import customer, metered_plan
from tests.billing.helpers import plan as define_plan
from tests.conftest import at
from tests.helpers import api_client

pytestmark = pytest.mark.django_db

T0 = at("2025-05-01 00:00")


@pytest.fixture
def metered(db):
    return metered_plan(seats=5)


@pytest.fixture
def sub(metered, drain):
    clock = TestClock.objects.create(frozen_time=T0 + timedelta(days=10), name="usage")
    c = customer(drain, country="GB", region="", test_clock_id=str(clock.pk))
    s = subs.subscribe(customer_id=str(c.id), plan_id=str(metered.id), clock=FixedClock(T0))
    drain()
    s.refresh_from_db()
    assert s.status == "active"
    return s


def rec(sub, key, quantity=10, when="2025-05-05T12:00:00Z", metric="api_calls"):
    return {
        "subscription": str(sub.id),
        "metric": metric,
        "quantity": quantity,
        "timestamp": when,
        "idempotency_key": key,
    }


def used(staff, sub) -> dict:
    return {m["metric"]: m for m in staff.get(f"/api/v1/subscriptions/{sub.id}/usage/").json()["metrics"]}


def test_a_repeated_key_is_a_duplicate_and_never_counted_twice(staff, sub):
    first = staff.post("/api/v1/usage/", [rec(sub, "a"), rec(sub, "b"), rec(sub, "a")], format="json").json()
    assert (first["accepted"], first["duplicates"], first["errors"]) == (2, 1, [])
    again = staff.post("/api/v1/usage/", rec(sub, "b", quantity=999), format="json").json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    assert used(staff, sub)["api_calls"]["used"] == 20
    assert UsageRecord.objects.count() == 2


def test_bad_records_get_their_own_errors_while_good_ones_are_accepted(staff, sub):
    batch = [
        rec(sub, "ok-1", 5),
        {**rec(sub, "x"), "subscription": "00000000-0000-0000-0000-000000000000"},
        rec(sub, "neg", -1),
        rec(sub, "unknown", metric="gpu_hours"),
        rec(sub, "old", when="2025-03-01T00:00:00Z"),
        rec(sub, "future", when="2025-06-30T00:00:00Z"),
        {**rec(sub, "nots"), "timestamp": "yesterday"},
        {**rec(sub, "float"), "quantity": 1.5},
        rec(sub, "ok-2", 7, metric="seats"),
    ]
    body = staff.post("/api/v1/usage/", batch, format="json").json()
    assert body["accepted"] == 2
    codes = {e["index"]: e["code"] for e in body["errors"]}
    assert codes == {
        1: "not_found",
        2: "negative",
        3: "unknown_metric",
        4: "outside_period",
        5: "in_future",
        6: "invalid",
        7: "invalid",
    }
    assert "api_calls" in body["errors"][2]["message"]  # says which metrics the plan meters
    assert used(staff, sub)["api_calls"]["used"] == 5 and used(staff, sub)["seats"]["used"] == 7


def test_batches_over_1000_and_other_customers_are_refused(staff, sub, drain):
    too_many = staff.post("/api/v1/usage/", [rec(sub, str(i)) for i in range(1001)], format="json")
    assert too_many.status_code == 400 and "1000" in too_many.json()["error"]["message"]
    _, key = subs.register_customer(
        name="Eve", email="eve@example.com", currency="USD", country="GB", with_api_key=True
    )
    eve = api_client()
    eve.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    refused = eve.post("/api/v1/usage/", rec(sub, "eve"), format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "usage_refused"
    assert refused.json()["error"]["details"]["errors"][0]["code"] == "not_found"


def test_a_post_without_a_body_is_a_400_not_an_empty_record(staff, sub):
    response = staff.post("/api/v1/usage/", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"body": "record or list"}


def test_thresholds_fire_once_each_per_period(staff, sub):
    def thresholds():
        return list(
            StoredEvent.objects.filter(
                event_type__in=["subscriptions.UsageThresholdReached", "subscriptions.UsageQuotaExceeded"]
            )
            .order_by("position")
            .values_list("event_type", "payload__threshold_percent")
        )

    staff.post("/api/v1/usage/", rec(sub, "1", 700), format="json")
    assert thresholds() == []
    staff.post("/api/v1/usage/", rec(sub, "2", 150), format="json")  # 850: crosses 80 %
    staff.post("/api/v1/usage/", rec(sub, "3", 100), format="json")  # 950: nothing new
    staff.post("/api/v1/usage/", [rec(sub, "4", 50), rec(sub, "5", 1)], format="json")  # 1001: 100 % and over
    staff.post("/api/v1/usage/", rec(sub, "6", 500), format="json")  # still over: nothing new
    assert thresholds() == [
        ("subscriptions.UsageThresholdReached", 80),
        ("subscriptions.UsageThresholdReached", 100),
        ("subscriptions.UsageQuotaExceeded", 100),
    ]
    api = used(staff, sub)["api_calls"]
    assert (api["used"], api["included"], api["overage"]) == (1501, 1000, 501)
    assert api["overage_amount"] == {"amount": "5.01", "currency": "USD"}
    assert StoredEvent.objects.filter(event_type="subscriptions.UsageRecorded").count() == 5  # one per call


def test_late_usage_counts_for_the_closed_period_within_the_grace_window(staff, sub, settings):
    from sharedkernel.scheduling import run_job

    settings.USAGE_GRACE_SECONDS = 3600
    period_end = sub.current_period_end
    TestClock.objects.filter(pk=sub.test_clock_id).update(frozen_time=period_end + timedelta(minutes=1))
    run_job(
        "subscriptions.renew_subscriptions", now=period_end + timedelta(minutes=1), test_clock_id=str(sub.test_clock_id)
    )
    late = rec(sub, "late", 40, when=(period_end - timedelta(minutes=5)).isoformat())
    assert staff.post("/api/v1/usage/", late, format="json").json()["accepted"] == 1
    from subscriptions.models import UsageCounter

    assert UsageCounter.objects.get(period_start=sub.current_period_start).used == 40  # the closed period
    TestClock.objects.filter(pk=sub.test_clock_id).update(frozen_time=period_end + timedelta(hours=2))
    too_late = staff.post("/api/v1/usage/", rec(sub, "too-late", 1, when=late["timestamp"]), format="json")
    assert too_late.status_code == 400
    assert too_late.json()["error"]["details"]["errors"][0]["code"] == "outside_period"


def test_customer_usage_page_shows_this_period_and_a_chart(client, metered, drain, staff):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("ann", "ann@example.com", "pw-Ann-12345")
    c, _ = subs.register_customer(name="Ann", email="ann@example.com", currency="USD", country="GB", user=user)
    drain()
    billing.update_payment_method(customer_id=str(c.id), token="pm_card_visa")
    s = subs.subscribe(customer_id=str(c.id), plan_id=str(metered.id))
    drain()
    staff.post("/api/v1/usage/", rec(s, "p1", 1200, when=s.current_period_start.isoformat()), format="json")
    client.force_login(user)
    assert "Usage" in client.get("/app/").content.decode()
    page = client.get(f"/app/subscriptions/{s.id}/usage/").content.decode()
    assert 'data-metric="api_calls"' in page and ">1,200<" in page and "2.00 USD" in page  # 200 over × 0.01, grouped
    assert 'class="bar over"' in page
    assert '<td class="num rate">0.01 USD</td>' in page  # the unit rate, exactly as the plan has it
    other = get_user_model().objects.create_user("bob", "bob@example.com", "pw-Bob-12345")
    subs.register_customer(name="Bob", email="bob@example.com", currency="USD", country="GB", user=other)
    client.force_login(other)
    assert client.get(f"/app/subscriptions/{s.id}/usage/").status_code == 404


def test_usage_admin_is_read_only(admin_client, staff, sub):
    staff.post("/api/v1/usage/", rec(sub, "adm", 3), format="json")
    for name in ("usagecounter", "usagerecord", "usageperiod"):
        assert admin_client.get(f"/admin/subscriptions/{name}/").status_code == 200
    assert admin_client.get("/admin/subscriptions/usagerecord/add/").status_code == 403


def test_cancelling_now_bills_the_partial_periods_overage_on_a_final_invoice(staff, sub, drain, settings):
    from billing.models import Invoice
    from sharedkernel.scheduling import run_job

    settings.USAGE_GRACE_SECONDS = 600
    staff.post("/api/v1/usage/", rec(sub, "big", 1100), format="json")
    cancelled_at = T0 + timedelta(days=10)
    subs.cancel_subscription(subscription_id=str(sub.id), reason="moving on", clock=FixedClock(cancelled_at))
    drain()

    def usage_calculated(minutes_after_cancelling: int) -> int:
        moment = cancelled_at + timedelta(minutes=minutes_after_cancelling)
        return run_job("subscriptions.calculate_usage", now=moment, test_clock_id=str(sub.test_clock_id))

    assert usage_calculated(9) == 0  # still in grace
    assert usage_calculated(10) == 1
    drain()
    final = Invoice.objects.get(subscription_id=sub.id, billing_reason="subscription_cancel")
    assert final.status == "paid"
    assert [(line.kind, str(line.amount.amount)) for line in final.lines.all()] == [("usage", "1.00"), ("tax", "0.00")]


def test_a_fine_unit_rate_is_charged_once_per_line_and_the_usage_view_agrees_with_the_invoice(staff, drain, settings):
    from billing.models import Invoice
    from sharedkernel.scheduling import run_job

    # given a plan charging 0.000125 USD per API call and 0.004999 USD per export over what it includes
    settings.USAGE_GRACE_SECONDS = 600
    plan = define_plan(
        "fine-m",
        "50.00 USD",
        name="Fine",
        included_usage={"api_calls": 1000, "exports": 0},
        overage_rates={"api_calls": [UnitRate("0.000125", "USD")], "exports": [UnitRate("0.004999", "USD")]},
    )
    clock = TestClock.objects.create(frozen_time=T0 + timedelta(days=10), name="fine")
    c = customer(drain, country="GB", region="", test_clock_id=str(clock.pk))
    s = subs.subscribe(customer_id=str(c.id), plan_id=str(plan.id), clock=FixedClock(T0))
    drain()
    # when 1,000,001 calls over the included 1,000 and 3 exports are reported
    staff.post("/api/v1/usage/", [rec(s, "calls", 1_001_001), rec(s, "x", 3, metric="exports")], format="json")
    # then the usage view charges each line once: 125.000125 → 125.00 and 0.014997 → 0.01 (not 3 × 0.00)
    shown = used(staff, s)
    assert shown["api_calls"]["rate"] == {"amount": "0.000125", "currency": "USD"}
    assert shown["api_calls"]["overage_amount"] == {"amount": "125.00", "currency": "USD"}
    assert shown["exports"]["overage_amount"] == {"amount": "0.01", "currency": "USD"}
    # and the final invoice bills the same lines
    cancelled_at = T0 + timedelta(days=10)
    subs.cancel_subscription(subscription_id=str(s.id), reason="done", clock=FixedClock(cancelled_at))
    drain()
    run_job("subscriptions.calculate_usage", now=cancelled_at + timedelta(minutes=10), test_clock_id=str(clock.pk))
    drain()
    final = Invoice.objects.get(subscription_id=s.id, billing_reason="subscription_cancel")
    lines = {line.metric: line for line in final.lines.filter(kind="usage")}
    assert (lines["api_calls"].quantity, str(lines["api_calls"].amount.amount)) == (1_000_001, "125.00")
    assert (lines["exports"].quantity, str(lines["exports"].amount.amount)) == (3, "0.01")
    assert "0.000125 USD each" in lines["api_calls"].description
    [calculated] = StoredEvent.objects.filter(
        event_type="subscriptions.UsageCalculated", payload__subscription_id=str(s.id)
    ).values_list("payload", flat=True)
    rates = {m["metric"]: m["rate"] for m in calculated["metrics"]}
    assert rates["api_calls"] == {"amount": "0.000125", "currency": "USD"}
