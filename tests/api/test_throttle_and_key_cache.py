"""Throttles and API-key authentication that cost no round trip per request, and stay right.

The throttle counts in shared windows with per-process batches (sharedkernel/api/throttling.py);
several processes are simulated by giving each its own local state over the one shared cache.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIRequestFactory

from sharedkernel.api import authentication, throttling
from tests.helpers import api_client, staff_user


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def throttle_class(rate: str, clock: Clock):
    class Throttle(throttling.WindowedRateThrottle):
        scope = "test"
        timer = clock

        def get_rate(self):
            return rate

        def get_cache_key(self, request, view):
            return "throttle_test_client"

    return Throttle


class Processes:
    """Each simulated process has its own batches; all share the cache."""

    def __init__(self, monkeypatch, n: int) -> None:
        self.states = [{} for _ in range(n)]
        self.monkeypatch = monkeypatch

    def allow(self, i: int, cls) -> bool:
        self.monkeypatch.setattr(throttling, "_windows", self.states[i])
        return cls().allow_request(APIRequestFactory().get("/"), None)


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    throttling.forget_local_counts()
    authentication.forget_all()
    yield
    cache.clear()
    throttling.forget_local_counts()
    authentication.forget_all()


def test_a_small_limit_is_shared_exactly_between_processes(monkeypatch):
    clock = Clock(6000.0)
    cls = throttle_class("5/minute", clock)
    processes = Processes(monkeypatch, 2)
    answers = [processes.allow(i % 2, cls) for i in range(8)]
    assert answers == [True] * 5 + [False] * 3  # not 5 per process


def test_a_large_limit_is_exceeded_by_at_most_one_batch_per_process_and_then_refused(monkeypatch, settings):
    settings.THROTTLE_SYNC_FRACTION = 0.01  # batches of 10 of a 1000 limit
    clock = Clock(6000.0)
    cls = throttle_class("1000/minute", clock)
    processes = Processes(monkeypatch, 3)
    allowed = 0
    for i in range(1200):
        clock.now += 0.001
        allowed += processes.allow(i % 3, cls)
    assert 1000 <= allowed <= 1000 + 3 * 10
    assert not any(processes.allow(i, cls) for i in range(3))  # every process refuses now


def test_the_shared_count_is_written_in_batches_not_per_request(monkeypatch, settings):
    settings.THROTTLE_SYNC_FRACTION = 0.01
    calls = []
    original = throttling.WindowedRateThrottle._count

    def counting(self, *args):
        calls.append(args)
        return original(self, *args)

    monkeypatch.setattr(throttling.WindowedRateThrottle, "_count", counting)
    clock = Clock(6000.0)
    cls = throttle_class("6000/minute", clock)
    for _ in range(600):
        clock.now += 0.0005  # 600 requests in 0.3 s
        assert cls().allow_request(APIRequestFactory().get("/"), None)
    assert len(calls) == 600 // 60  # one shared write per batch of 60 (1 % of 6000)


def test_a_burst_at_a_windows_edge_is_not_let_through_twice(monkeypatch):
    clock = Clock(6059.0)  # one second before a minute's window ends
    cls = throttle_class("5/minute", clock)
    processes = Processes(monkeypatch, 1)
    assert [processes.allow(0, cls) for _ in range(5)] == [True] * 5
    clock.now = 6061.0  # the next window: the last minute still holds those five
    assert processes.allow(0, cls) is False
    clock.now = 6061.0 + 60
    assert processes.allow(0, cls) is True


def test_a_refusal_says_how_long_to_wait(monkeypatch):
    clock = Clock(6030.0)
    cls = throttle_class("1/minute", clock)
    assert cls().allow_request(APIRequestFactory().get("/"), None)
    throttle = cls()
    assert throttle.allow_request(APIRequestFactory().get("/"), None) is False
    assert throttle.wait() == pytest.approx(30.0)


def test_the_api_answers_429_with_the_wait_once_the_anonymous_limit_is_reached(settings, db):
    from rest_framework.throttling import SimpleRateThrottle

    original = SimpleRateThrottle.THROTTLE_RATES
    SimpleRateThrottle.THROTTLE_RATES = {**original, "anon": "3/minute"}
    try:
        client = api_client()
        responses = [client.get("/api/v1/plans/") for _ in range(4)]
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    body = responses[3].json()["error"]
    assert body["code"] == "throttled" and 1 <= body["details"]["retry_after_seconds"] <= 60
    assert 1 <= int(responses[3]["Retry-After"]) <= 60


def test_the_shared_count_lives_in_the_cache_with_an_expiry(monkeypatch):
    clock = Clock(6000.0)
    cls = throttle_class("5/minute", clock)
    assert cls().allow_request(APIRequestFactory().get("/"), None)
    assert cache.get("throttle_test_client:w60:100") == 1
    if hasattr(cache, "_cache"):  # Redis: the key expires after two windows
        client = cache._cache.get_client(write=False)
        assert 0 < client.ttl(cache.make_and_validate_key("throttle_test_client:w60:100")) <= 121


# -- API keys ------------------------------------------------------------------------------


def queries_of(client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_a_known_key_is_answered_without_a_query_and_a_deleted_key_is_refused_at_once():
    user = staff_user()
    client = api_client(user)
    first = queries_of(client, "/api/v1/plans/")
    second = queries_of(client, "/api/v1/plans/")
    assert second == first - 1  # the key and its user came from the cache
    Token.objects.get(user=user).delete()
    response = client.get("/api/v1/plans/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


@pytest.mark.django_db(transaction=True)
def test_a_deactivated_user_is_refused_on_the_next_request():
    user = staff_user()
    client = api_client(user)
    assert client.get("/api/v1/plans/").status_code == 200
    user.is_active = False
    user.save()
    assert client.get("/api/v1/plans/").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_key_revoked_where_no_signal_reaches_stops_working_within_the_ttl(monkeypatch, settings):
    settings.API_TOKEN_CACHE_SECONDS = 10
    now = [1000.0]
    monkeypatch.setattr(authentication.time, "monotonic", lambda: now[0])
    user = staff_user()
    client = api_client(user)
    assert client.get("/api/v1/plans/").status_code == 200
    Token.objects.filter(user=user).update(key="0" * 40)  # as another process would: no signal here
    now[0] += 9
    assert client.get("/api/v1/plans/").status_code == 200  # the documented window
    now[0] += 2
    assert client.get("/api/v1/plans/").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_with_the_ttl_at_zero_every_request_looks_the_key_up(settings):
    settings.API_TOKEN_CACHE_SECONDS = 0
    client = api_client(staff_user())
    assert queries_of(client, "/api/v1/plans/") == queries_of(client, "/api/v1/plans/")


@pytest.mark.django_db(transaction=True)
def test_each_request_gets_its_own_copy_of_the_cached_user():
    user = staff_user()
    key = Token.objects.create(user=user).key
    auth = authentication.CachedTokenAuthentication()
    first, _ = auth.authenticate_credentials(key)
    first.first_name = "changed by one request"
    second, _ = auth.authenticate_credentials(key)
    assert second is not first and second.first_name == "" and second.pk == user.pk
