"""A test-clock advance is a run recorded on the clock and carried forward in turns (sharedkernel.scheduling):
committed for real, in-process dispatch (the same turns a worker takes). The worker's side is
tests/sharedkernel/test_clock_advance_flow.py."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from sharedkernel import scheduling, tasks
from sharedkernel.models import StoredEvent, TestClock
from subscriptions.models import Subscription
from tests.conftest import at
from tests.helpers import api_client, staff_user
from tests.sharedkernel.test_edges_committed import trial_on_a_clock

pytestmark = pytest.mark.django_db(transaction=True)

TRIAL_ENDS = "2025-03-15T09:00:00Z"  # trial_on_a_clock: 14 days from the clock's 2025-03-01 09:00


def a_clock(name="clock") -> TestClock:
    return TestClock.objects.create(name=name, frozen_time=at("2025-03-01 09:00"))


def failing_trial_expiry(monkeypatch) -> None:
    job = scheduling.JOBS["subscriptions.expire_trials"]

    def boom(now, test_clock_id):  # it works until the trial's end comes, then raises
        if now >= at("2025-03-15 09:00"):
            raise RuntimeError("trial expiry broke")
        return job.run(now, test_clock_id)

    monkeypatch.setitem(scheduling.JOBS, job.name, scheduling.ScheduledJob(job.name, run=boom, next_due=job.next_due))


def test_the_api_answers_200_with_the_clock_once_the_advance_is_done(drain):
    # given a trial on a clock
    clock = a_clock()
    sub = trial_on_a_clock(drain, str(clock.pk))
    staff = api_client(staff_user())

    # when staff advance the clock past the trial's end
    response = staff.post(f"/api/v1/test-clocks/{clock.pk}/advance/", {"to": "2025-03-16T00:00:00Z"}, format="json")

    # then the answer is the clock, ready at the target, and the due work ran
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["frozen_time"], body["advance_to"], body["advance_error"]) == (
        "ready",
        "2025-03-16T00:00:00Z",
        "2025-03-16T00:00:00Z",
        "",
    )
    assert Subscription.objects.get(pk=sub.pk).status == "suspended"
    clock.refresh_from_db()
    assert clock.advance_lease_until is None


def test_an_advancing_clock_refuses_a_second_advance_with_409(drain):
    clock = a_clock()
    scheduling.begin_advance(str(clock.pk), at("2025-03-02 00:00"))  # a run under way
    response = api_client(staff_user()).post(
        f"/api/v1/test-clocks/{clock.pk}/advance/", {"to": "2025-03-03T00:00:00Z"}, format="json"
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "test_clock_advancing"


def test_a_failing_job_leaves_the_clock_ready_where_it_got_to_with_the_error_shown(drain, monkeypatch, client):
    # given a trial on a clock, and trial expiry broken
    clock = a_clock("broken")
    trial_on_a_clock(drain, str(clock.pk))
    failing_trial_expiry(monkeypatch)
    staff = api_client(staff_user())

    # when staff advance past the trial's end
    response = staff.post(f"/api/v1/test-clocks/{clock.pk}/advance/", {"to": "2025-03-20T00:00:00Z"}, format="json")

    # then the advance failed: the clock is ready at the trial's end (where the job raised), the error on it
    assert response.status_code == 500, response.content
    error = response.json()["error"]
    assert error["code"] == "test_clock_advance_failed" and "trial expiry broke" in error["message"]
    shown = staff.get(f"/api/v1/test-clocks/{clock.pk}/").json()
    assert error["details"]["test_clock"] == shown
    assert shown["status"] == "ready" and shown["frozen_time"] == TRIAL_ENDS
    assert shown["advance_error"] == "RuntimeError: trial expiry broke"
    # and staff see it in the admin, both from the action and on the clock's page
    client.force_login(staff_user("boss"))
    page = client.post(
        "/admin/sharedkernel/testclock/", {"action": "advance_one_day", "_selected_action": [clock.pk]}, follow=True
    ).content.decode()
    assert "Broken stopped at 2025-03-15 09:00: RuntimeError: trial expiry broke" in page
    change = client.get(f"/admin/sharedkernel/testclock/{clock.pk}/change/").content.decode()
    assert "RuntimeError: trial expiry broke" in change


def test_the_in_process_advance_raises_what_stopped_it_and_leaves_the_clock_ready(drain, monkeypatch):
    clock = a_clock()
    trial_on_a_clock(drain, str(clock.pk))
    failing_trial_expiry(monkeypatch)
    with pytest.raises(RuntimeError, match="trial expiry broke"):
        scheduling.advance_test_clock(str(clock.pk), at("2025-03-20 00:00"))
    clock.refresh_from_db()
    assert (clock.status, clock.frozen_time) == ("ready", at("2025-03-15 09:00"))
    assert clock.advance_error == "RuntimeError: trial expiry broke"


def test_a_crashed_advance_is_resumed_by_beat_and_ends_ready_at_its_target(drain):
    # given an advance whose process died mid-way: ADVANCING, a target, an expired lease
    clock = a_clock()
    sub = trial_on_a_clock(drain, str(clock.pk))
    TestClock.objects.filter(pk=clock.pk).update(
        status="advancing",
        frozen_time=at("2025-03-10 00:00"),
        advance_to=at("2025-03-20 00:00"),
        advance_run=uuid.uuid4(),
        advance_lease_until=timezone.now() - timedelta(seconds=1),
    )
    # and one whose lease is still running: its run is alive, beat leaves it alone
    alive = a_clock("alive")
    scheduling.begin_advance(str(alive.pk), at("2025-03-02 00:00"))

    # when beat runs its resume job
    assert tasks.resume_test_clocks.apply().get() == 1

    # then the crashed advance continued from where it was to its target, and is ready there
    clock.refresh_from_db()
    assert (clock.status, clock.frozen_time, clock.advance_error) == ("ready", at("2025-03-20 00:00"), "")
    assert Subscription.objects.get(pk=sub.pk).status == "suspended"
    assert StoredEvent.objects.filter(aggregate_id=str(sub.pk), event_type="subscriptions.TrialExpired").count() == 1
    alive.refresh_from_db()
    assert (alive.status, alive.frozen_time) == ("advancing", at("2025-03-01 09:00"))
    # and a second beat finds nothing to resume
    assert scheduling.resume_stalled_advances() == 0


def test_a_clock_left_advancing_without_a_target_is_made_ready_by_beat():
    # given a clock left ADVANCING before advances recorded their target
    clock = a_clock()
    TestClock.objects.filter(pk=clock.pk).update(status="advancing")
    assert scheduling.resume_stalled_advances() == 0
    clock.refresh_from_db()
    assert clock.status == "ready" and "interrupted" in clock.advance_error


def test_a_late_turn_of_a_run_that_was_taken_over_does_nothing(drain):
    # given a run, taken over by beat under a new run id
    clock = a_clock()
    old = scheduling.begin_advance(str(clock.pk), at("2025-03-20 00:00")).advance_run
    TestClock.objects.filter(pk=clock.pk).update(advance_run=uuid.uuid4())

    # when a late (or duplicate) task of the old run takes its turn
    turn = scheduling.take_turn(str(clock.pk), old)

    # then it stops without touching the clock
    assert turn.outcome == scheduling.LOST
    clock.refresh_from_db()
    assert (clock.status, clock.frozen_time) == ("advancing", at("2025-03-01 09:00"))


def test_a_worker_turn_yields_when_its_time_is_up_and_the_next_turn_finishes(drain, settings):
    # given an advance, and turns of no time at all
    clock = a_clock()
    sub = trial_on_a_clock(drain, str(clock.pk))
    run = scheduling.begin_advance(str(clock.pk), at("2025-03-20 00:00")).advance_run
    settings.TEST_CLOCK_TURN_SECONDS = 0

    # when a worker takes one turn: it runs one step and leaves the rest to the next turn
    first = scheduling.take_turn(str(clock.pk), run, seconds=0)
    assert (first.outcome, first.steps) == (scheduling.WAITING, 1)
    assert TestClock.objects.get(pk=clock.pk).status == "advancing"

    # then the next turns (the task re-enqueues itself; in-process dispatch takes them here) finish it
    tasks.advance_test_clock.apply(args=(str(clock.pk), str(run), None, first.steps)).get()
    clock.refresh_from_db()
    assert (clock.status, clock.frozen_time) == ("ready", at("2025-03-20 00:00"))
    assert Subscription.objects.get(pk=sub.pk).status == "suspended"
