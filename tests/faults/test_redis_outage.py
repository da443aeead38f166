"""Redis — the broker and the cache DRF's throttles read — stopped under API load: every request
answers 2xx/4xx, commands keep committing, /healthz says what is down, and once Redis is back every
committed event is handled (issue 11, defect 9)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connection
from rest_framework.throttling import UserRateThrottle

from billing.models import BillingAccount
from config.celery import app
from notifications.models import Recipient
from sharedkernel.cache import FallbackRedisCache
from sharedkernel.tasks import beat_heartbeat
from subscriptions.models import Customer
from tests.conftest import ARTIFACTS
from tests.faults.conftest import FAULTS, PrivateRedis, reset_producers, settle_everything, wait_until
from tests.helpers import api_client, staff_user

pytestmark = FAULTS

#: The outage of the issue lasted 30 s; CI runs a shorter one (FAULT_REDIS_OUTAGE_SECONDS=30 for the full one).
#: A known kombu defect (see the test below) as it shows in the worker's log.
KOMBU_CRASH = "object has no attribute 'hostname'"
WORKER_LOG = ARTIFACTS / "celery-worker-faults.log"
OUTAGE_SECONDS = float(os.environ.get("FAULT_REDIS_OUTAGE_SECONDS", "8"))


def private_cache(settings, redis: PrivateRedis, retry_seconds: int = 1) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "sharedkernel.cache.FallbackRedisCache",
            "LOCATION": redis.url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1, "FALLBACK_RETRY_SECONDS": retry_seconds},
        }
    }


@pytest.fixture
def redis():
    found = PrivateRedis().start()
    yield found
    found.stop()


def test_the_cache_answers_from_a_local_store_while_redis_is_down_and_says_so_once(redis, caplog):
    cache = FallbackRedisCache(redis.url, {"OPTIONS": {"socket_connect_timeout": 0.5, "FALLBACK_RETRY_SECONDS": 0}})
    cache.set("k", "in redis", 60)
    assert cache.get("k") == "in redis" and cache.health() == "ok"

    redis.kill()
    with caplog.at_level(logging.WARNING, logger="sharedkernel.cache"):
        assert cache.get("k") is None  # Redis's value is out of reach; no error
        cache.set("k", "local", 60)
        assert cache.get("k") == "local"
        assert cache.add("n", 1) and cache.incr("n") == 2
        with pytest.raises(RuntimeError, match="local in-process store"):
            cache.health()
    assert cache.degraded
    warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per call

    redis.start()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sharedkernel.cache"):
        cache.set("k", "in redis again", 60)
    assert not cache.degraded and cache.health() == "ok"
    assert [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
    assert cache.get("k") == "in redis again"


@pytest.mark.django_db(transaction=True)
def test_with_the_cache_down_throttling_still_counts_from_the_local_store(redis, settings, monkeypatch):
    private_cache(settings, redis)
    monkeypatch.setattr(UserRateThrottle, "rate", "5/minute", raising=False)
    client = api_client(staff_user())
    redis.kill()
    codes = [client.get("/api/v1/plans/").status_code for _ in range(7)]
    assert codes == [200] * 5 + [429] * 2  # degraded to a local count, neither open nor a 500
    assert caches["default"].degraded


def test_redis_stopped_under_api_load_no_request_fails_and_every_committed_event_is_handled(
    broker, settings, smtp_sink
):
    # given the API, its cache and its broker on a private Redis, and a worker on it
    log_from = len(WORKER_LOG.read_text(errors="replace")) if WORKER_LOG.exists() else 0
    private_cache(settings, broker.redis)
    broker.worker()
    staff_user()
    beat_heartbeat()
    User = get_user_model()
    answers: list[tuple[str, int]] = []
    took: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(n: int) -> None:
        client = api_client(User.objects.get(username="staff"))
        i = 0
        try:
            while not stop.is_set():
                i += 1
                began = time.monotonic()
                if i % 2:
                    response = client.post(
                        "/api/v1/customers/",
                        {"name": f"Load {n}-{i}", "email": f"load{n}-{i}@load.example", "currency": "USD"}
                        | {"country": "GB"},
                        format="json",
                    )
                    kind = "create"
                else:
                    response = client.get("/api/v1/customers/")
                    kind = "list"
                with lock:
                    answers.append((kind, response.status_code))
                    took.append(time.monotonic() - began)
        finally:
            connection.close()

    threads = [threading.Thread(target=load, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(answers) >= 20, timeout=60, what="load before the outage")

        # when Redis stops for a while under that load
        broker.redis.kill()
        during_from = len(answers)
        health = api_client().get("/healthz")
        time.sleep(OUTAGE_SECONDS)
        during = answers[during_from:]
        slowest_during = max(took[during_from:], default=0.0)
        broker.redis.start()
        reset_producers(app)
        after_from = len(answers)
        wait_until(lambda: len(answers) >= after_from + 20, timeout=60, what="load after the outage")
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    # then no request failed, before, during or after, and commands kept committing
    codes = Counter(status for _, status in answers)
    assert all(200 <= status < 500 for status in codes), codes
    assert all(200 <= status < 500 for _, status in during) and any(k == "create" for k, _ in during), during
    assert slowest_during < 10, f"a request took {slowest_during:.1f}s during the outage"  # no hanging
    assert health.status_code == 503
    assert health.json()["checks"]["cache"].startswith("failing") and "local" in health.json()["checks"]["cache"]
    assert health.json()["checks"]["broker"].startswith("failing")

    # and once Redis is back every committed event is handled: each customer has its account, its
    # recipient and its welcome e-mail, once
    settle_everything()
    # (kombu 5.7's consumer used to die here, see config/celery.py: _survive_a_lost_broker)
    assert KOMBU_CRASH not in WORKER_LOG.read_text(errors="replace")[log_from:]
    created = sum(1 for kind, status in answers if kind == "create" and status == 201)
    assert Customer.objects.count() == created
    assert BillingAccount.objects.count() == created and Recipient.objects.count() == created
    with smtp_sink.lock:
        welcomes = [m for _, m in smtp_sink.messages if m["X-SubscriptionHub-Template"] == "welcome"]
        load_mail = [m for m in welcomes if "@load.example" in str(m["To"])]
    assert len(load_mail) == created and len({str(m["To"]) for m in load_mail}) == created
    assert api_client().get("/healthz").json()["checks"]["cache"] == "ok"
