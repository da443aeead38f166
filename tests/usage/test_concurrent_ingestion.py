"""Concurrent batches, committed for real (no wrapping test transaction), through POST /api/v1/usage/:
overlapping keys are counted once, overlapping counters never deadlock, and each threshold fires once."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sharedkernel.clock import FixedClock
from sharedkernel.models import StoredEvent
from subscriptions import commands as subs
from subscriptions.models import UsageCounter, UsageRecord
from tests.billing.helpers import customer, metered_plan
from tests.helpers import all_at_once, api_client, staff_user

pytestmark = pytest.mark.django_db(transaction=True)

THREADS, BATCHES, PER_BATCH = 4, 5, 200


def test_overlapping_concurrent_batches_count_each_key_once_and_fire_each_threshold_once(drain):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: nothing runs concurrently")
    # given three subscriptions of 1,000 included calls each
    plan = metered_plan("api-c")
    start = timezone.now() - timedelta(hours=1)
    sub_ids = []
    for n in range(3):
        c = customer(drain, email=f"c{n}@example.com", country="GB", region="")
        sub_ids.append(str(subs.subscribe(customer_id=str(c.id), plan_id=str(plan.id), clock=FixedClock(start)).pk))
    drain()
    token_user = staff_user()
    # and batches that repeat each other's keys, over the same counters, in shuffled order
    keys = [(sub_ids[k % 3], f"k{k}", 1 + k % 7) for k in range(THREADS * BATCHES * PER_BATCH // 2)]
    when = timezone.now().isoformat()
    plans = []
    for t in range(THREADS):
        rng = random.Random(t)
        plans.append(
            [
                [
                    {"subscription": s, "metric": "api_calls", "quantity": q, "timestamp": when, "idempotency_key": k}
                    for s, k, q in rng.sample(keys, PER_BATCH)
                ]
                for _ in range(BATCHES)
            ]
        )
    barrier, answers, failures = threading.Barrier(THREADS), [], []

    def post_all(batches):
        try:
            client = api_client(token_user)
            barrier.wait()
            for batch in batches:
                response = client.post("/api/v1/usage/", batch, format="json")
                answers.append((response.status_code, response.json()))
        except Exception as exc:  # reported below: a thread must not die silently
            failures.append(repr(exc))
        finally:
            connection.close()

    # when the threads post at once
    all_at_once(post_all, [(p,) for p in plans], timeout=120)

    # then every call succeeded, and what was counted is exactly the distinct keys that were sent
    assert failures == []
    assert [code for code, _ in answers] == [200] * THREADS * BATCHES
    sent = {(r["subscription"], r["idempotency_key"]): r["quantity"] for p in plans for b in p for r in b}
    assert sum(body["accepted"] for _, body in answers) == len(sent) == UsageRecord.objects.count()
    assert sum(body["duplicates"] for _, body in answers) == THREADS * BATCHES * PER_BATCH - len(sent)
    for sub_id in sub_ids:
        expected = sum(q for (s, _), q in sent.items() if s == sub_id)
        assert UsageCounter.objects.get(subscription_id=sub_id).used == expected
        staff = api_client(token_user)
        [metric] = staff.get(f"/api/v1/subscriptions/{sub_id}/usage/").json()["metrics"]
        assert metric["used"] == expected
    # and each subscription went past its quota: 80 %, 100 % and "exceeded" fired once each, whichever
    # of the concurrent batches crossed the line
    assert all(UsageCounter.objects.get(subscription_id=s).used > 1000 for s in sub_ids)
    fired = sorted(
        (e.payload["subscription_id"], e.event_type, e.payload["threshold_percent"])
        for e in StoredEvent.objects.filter(
            event_type__in=["subscriptions.UsageThresholdReached", "subscriptions.UsageQuotaExceeded"]
        )
    )
    assert fired == sorted(
        (s, t, p)
        for s in sub_ids
        for t, p in (
            ("subscriptions.UsageThresholdReached", 80),
            ("subscriptions.UsageThresholdReached", 100),
            ("subscriptions.UsageQuotaExceeded", 100),
        )
    )
    recorded = StoredEvent.objects.filter(event_type="subscriptions.UsageRecorded")
    assert sum(e.payload["accepted"] for e in recorded) == len(sent)
