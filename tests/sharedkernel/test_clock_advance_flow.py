"""A test-clock advance run by the real worker (concurrency 2), the request waiting for it or answering 202."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from sharedkernel import tasks
from sharedkernel.models import StoredEvent, TestClock
from tests.conftest import at, wait_until_handled
from tests.flows.api import make_plan, new_customer
from tests.helpers import api_client, staff_user

pytestmark = pytest.mark.flow


@pytest.fixture
def staff(flow, settings):
    settings.TEST_CLOCK_ADVANCE_RUNS_IN = "worker"  # what production does; flows otherwise advance in the test
    return api_client(staff_user())


def trial_on_a_clock(staff, name="Ada") -> tuple[dict, dict]:
    """A customer without a card trialing a 14-day plan on a clock at 2025-03-01 09:00."""
    clock = staff.post("/api/v1/test-clocks/", {"frozen_time": "2025-03-01T09:00:00Z", "name": name}, format="json")
    clock = clock.json()
    plan = make_plan(staff, f"pro-{name.lower()}", "30.00", trial_days=14, name="Pro")
    customer = new_customer(staff, name, clock)
    sub = staff.post(
        "/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan["id"], "trial": True}, format="json"
    ).json()
    wait_until_handled()
    return clock, sub


def advance(staff, clock, to: str):
    return staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": to}, format="json")


def ready(staff, clock, timeout: float = 90) -> dict:
    """Poll the clock as a client told 202 does."""
    deadline = time.monotonic() + timeout
    while (body := staff.get(f"/api/v1/test-clocks/{clock['id']}/").json())["status"] != "ready":
        assert time.monotonic() < deadline, body
        time.sleep(0.1)
    return body


def expired(sub) -> bool:
    return StoredEvent.objects.filter(aggregate_id=sub["id"], event_type="subscriptions.TrialExpired").exists()


def test_the_worker_advances_the_clock_and_the_request_answers_200_when_done(staff):
    clock, sub = trial_on_a_clock(staff)
    response = advance(staff, clock, "2025-03-16T00:00:00Z")
    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["frozen_time"]) == ("ready", "2025-03-16T00:00:00Z")
    assert expired(sub)
    assert staff.get(f"/api/v1/subscriptions/{sub['id']}/").json()["status"] == "suspended"


def test_past_the_request_limit_the_answer_is_202_and_the_clock_then_reaches_its_target(staff, settings):
    # given a request that waits no time at all
    settings.TEST_CLOCK_REQUEST_WAIT_SECONDS = 0
    clock, sub = trial_on_a_clock(staff)

    # when staff advance past the trial's end
    response = advance(staff, clock, "2025-03-16T00:00:00Z")

    # then the answer is 202 with the clock still advancing, showing where it is and where it goes
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["status"], body["advance_to"]) == ("advancing", "2025-03-16T00:00:00Z")
    assert body["frozen_time"] <= "2025-03-16T00:00:00Z"
    # and polling the clock finds it ready at the target, the due work done
    done = ready(staff, clock)
    assert (done["frozen_time"], done["advance_error"]) == ("2025-03-16T00:00:00Z", "")
    wait_until_handled()
    assert expired(sub)


def test_a_crashed_advance_is_resumed_by_the_beat_job_in_the_worker(staff):
    # given an advance whose worker died mid-way: ADVANCING to a target, its lease run out
    clock, sub = trial_on_a_clock(staff)
    TestClock.objects.filter(pk=clock["id"]).update(
        status="advancing",
        frozen_time=at("2025-03-10 00:00"),
        advance_to=at("2025-03-20 00:00"),
        advance_run=uuid.uuid4(),
        advance_lease_until=timezone.now() - timedelta(seconds=1),
    )

    # when beat's resume job runs
    assert tasks.resume_test_clocks.apply().get() == 1

    # then the worker carries the advance on to its target, and the clock is ready there
    assert ready(staff, clock)["frozen_time"] == "2025-03-20T00:00:00Z"
    wait_until_handled()
    assert expired(sub)


def test_two_advances_at_once_do_not_deadlock_a_worker_of_two(staff, settings):
    # given two clocks, each advanced in the worker (concurrency 2) without the request waiting
    settings.TEST_CLOCK_REQUEST_WAIT_SECONDS = 0
    first, first_sub = trial_on_a_clock(staff, "Ada")
    second, second_sub = trial_on_a_clock(staff, "Bob")

    # when both advance at once: each turn could hold a slot while waiting for its deliveries
    assert advance(staff, first, "2025-04-20T00:00:00Z").status_code == 202
    assert advance(staff, second, "2025-04-20T00:00:00Z").status_code == 202

    # then both reach their targets: a waiting turn hands its slot back to the deliveries it waits for
    for clock in (first, second):
        assert ready(staff, clock)["frozen_time"] == "2025-04-20T00:00:00Z"
    wait_until_handled()
    assert expired(first_sub) and expired(second_sub)
