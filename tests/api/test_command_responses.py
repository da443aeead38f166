"""A command's response describes the state that command produced, not a later read.

Real concurrent HTTP requests against the live server: several change-plan calls on one
subscription race; the losers answer 409 concurrent_update, and every 2xx answer shows the
plan it asked for at a version no other answer shows. Because a real race may not interleave
badly on a given run, a second test makes the bad interleaving certain: another change commits
between this command's commit and its answer (a re-read would show that one; it fails against
the old ``Subscription.objects.get`` answer).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_change_plan_answers_each_show_their_own_version(world):
    # given an active subscription and six plans to change to, one request per plan per round
    sub = Subscription.objects.get(pk=world.subscription_id)
    assert sub.status == "active"
    targets = [world.plans[f"pro-{n}"] for n in range(6)]
    headers = {"Authorization": f"Token {world.staff_token}"}
    url = f"{world.url}/api/v1/subscriptions/{world.subscription_id}/change-plan/"
    answers: list[tuple[str, requests.Response]] = []

    # when rounds of six requests start at once (a barrier), for several rounds
    for _ in range(8):
        start = threading.Barrier(len(targets))

        def change_to(plan_id: str, start=start) -> tuple[str, requests.Response]:
            start.wait()
            return plan_id, requests.post(url, json={"plan": plan_id}, headers=headers, timeout=30)

        with ThreadPoolExecutor(len(targets)) as pool:
            answers += list(pool.map(change_to, targets))

    # then every answer is a 2xx or a 409 the contract names, never a 500
    ok = [(plan_id, r.json()) for plan_id, r in answers if r.status_code == 200]
    refused = [r.json()["error"]["code"] for _, r in answers if r.status_code == 409]
    assert len(ok) + len(refused) == len(answers), [(r.status_code, r.text) for _, r in answers]
    assert set(refused) <= {"concurrent_update", "same_plan"}
    assert ok, "no change-plan request succeeded"
    # and each 2xx answer shows the plan that request chose, at a version no other answer has
    assert all(body["plan"] == plan_id for plan_id, body in ok), ok
    versions = [body["version"] for _, body in ok]
    assert len(set(versions)) == len(versions), versions
    # and the last successful answer is the state that stayed
    sub.refresh_from_db()
    assert max(versions) == sub.version
    assert str(sub.plan_id) == next(body["plan"] for _, body in ok if body["version"] == sub.version)


def test_a_change_plan_answer_is_not_a_read_after_another_request_committed(world, monkeypatch):
    # given another change-plan request that commits just after this one, before this one answers
    # (the interleaving the race above depends on, made certain)
    from subscriptions import commands

    real = commands.change_plan
    ours, theirs = world.plans["pro-1"], world.plans["pro-2"]

    def then_a_concurrent_change(**kwargs):
        answer = real(**kwargs)
        monkeypatch.setattr(commands, "change_plan", real)
        real(subscription_id=kwargs["subscription_id"], plan_id=theirs, by_staff=True)
        return answer

    monkeypatch.setattr(commands, "change_plan", then_a_concurrent_change)

    # when this request changes to its plan
    r = requests.post(
        f"{world.url}/api/v1/subscriptions/{world.subscription_id}/change-plan/",
        json={"plan": ours},
        headers={"Authorization": f"Token {world.staff_token}"},
        timeout=30,
    )

    # then its answer shows the plan and version it wrote, not the other request's
    assert r.status_code == 200, r.text
    sub = Subscription.objects.get(pk=world.subscription_id)
    assert str(sub.plan_id) == theirs  # the other request did land afterwards
    assert r.json()["plan"] == ours
    assert r.json()["version"] == sub.version - 1


def test_plan_commands_answer_with_the_plan_they_saved(world):
    # given a staff token and a plan with a price
    headers = {"Authorization": f"Token {world.staff_token}"}
    plan_id = world.plans["team"]

    # when staff archive it and restore it
    archived = requests.post(f"{world.url}/api/v1/plans/{plan_id}/archive/", headers=headers, timeout=30)
    restored = requests.post(f"{world.url}/api/v1/plans/{plan_id}/restore/", headers=headers, timeout=30)

    # then each answer is the plan as that command left it, terms included
    assert archived.status_code == 200 and archived.json()["archived"] is True, archived.text
    assert restored.status_code == 200 and restored.json()["archived"] is False, restored.text
    for body in (archived.json(), restored.json()):
        assert body["prices"] == [{"amount": "60.00", "currency": "USD"}]
        assert body["overage_rates"] == {"api_calls": {"amount": "0.01", "currency": "USD"}}
        assert body["included_usage"] == {"api_calls": 1000}
