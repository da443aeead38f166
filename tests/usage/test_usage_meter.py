"""The usage aggregate on its own (no database): which records count towards which period, and
which thresholds a counter crosses."""

from __future__ import annotations

from datetime import timedelta

from subscriptions.models.usage import MeteredSubscription, Refusal, UsageMeter
from tests.conftest import at

START, END = at("2025-05-01 00:00"), at("2025-06-01 00:00")


def metered(status="active", index=1, included=None) -> MeteredSubscription:
    return MeteredSubscription(
        customer_id="c1",
        status=status,
        period_start=START,
        period_end=END,
        anchor=at("2025-04-01 00:00"),
        index=index,
        interval="month",
        included={"api_calls": 1000} if included is None else included,
        test_clock_id=None,
    )


def test_thresholds_are_crossed_once_each_going_from_before_to_after():
    assert UsageMeter.crossed(0, 799, 1000) == []
    assert UsageMeter.crossed(0, 800, 1000) == [80]
    assert UsageMeter.crossed(799, 1000, 1000) == [80, 100]
    assert UsageMeter.crossed(800, 900, 1000) == []
    assert UsageMeter.crossed(0, 10, 0) == []  # nothing included: no thresholds


def test_the_quota_is_exceeded_only_by_the_addition_that_goes_past_it():
    assert not UsageMeter.exceeded(0, 1000, 1000)
    assert UsageMeter.exceeded(1000, 1001, 1000)
    assert UsageMeter.exceeded(10, 2000, 1000)
    assert not UsageMeter.exceeded(1001, 1500, 1000)
    assert not UsageMeter.exceeded(0, 5, 0)


def test_only_a_billable_subscription_and_a_metered_metric_count():
    assert metered().refuses("api_calls") is None
    assert metered(status="trialing").refuses("api_calls") is None
    assert metered(status="suspended").refuses("api_calls").code == "not_billable"
    assert metered().refuses("seats").code == "unknown_metric"


def test_usage_counts_towards_the_open_period_or_the_closed_one_within_grace():
    sub = metered()
    now = START + timedelta(minutes=10)
    assert sub.period_for(START + timedelta(minutes=1), now) == START
    assert sub.period_for(START - timedelta(minutes=1), now) == at("2025-04-01 00:00")  # late, within grace
    late = sub.period_for(START - timedelta(minutes=1), START + timedelta(days=1))
    assert isinstance(late, Refusal) and late.code == "outside_period"
    future = sub.period_for(now + timedelta(minutes=6), now)
    assert isinstance(future, Refusal) and future.code == "in_future"
    first = metered(index=0).period_for(START - timedelta(minutes=1), now)  # no period before the first
    assert isinstance(first, Refusal) and first.code == "outside_period"


def test_a_batch_records_its_totals_and_each_threshold_event_once():
    sub = metered()
    now = START + timedelta(hours=1)
    meter = UsageMeter({"s1": sub}, {None: now})
    events = meter.events(
        accepted=3, duplicates=1, sums={("s1", "api_calls", START): 1001}, after={("s1", "api_calls", START): (7, 1001)}
    )
    names = [e.event.event_type for e in events]
    assert names == [
        "subscriptions.UsageRecorded",
        "subscriptions.UsageThresholdReached",
        "subscriptions.UsageThresholdReached",
        "subscriptions.UsageQuotaExceeded",
    ]
    assert [e.aggregate_type for e in events] == ["UsageBatch", "UsageCounter", "UsageCounter", "UsageCounter"]
    assert {e.aggregate_id for e in events[1:]} == {"7"}
    assert [e.event.threshold_percent for e in events[1:]] == [80, 100, 100]
    assert meter.events(accepted=0, duplicates=2, sums={}, after={}) == []
