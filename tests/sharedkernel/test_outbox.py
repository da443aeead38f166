"""The outbox, the ledger and delivery, against the database (handlers run in-process)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from sharedkernel import bus
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.correlation import new_chain
from sharedkernel.events import upcaster
from sharedkernel.eventstore import append, read
from sharedkernel.models import OPEN_STATUSES, DeliveryStatus, EventDelivery, Heartbeat, StoredEvent
from tests.conftest import at
from tests.helpers import TaggedEvent

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Pinged(TaggedEvent):
    event_type: str = "tests.Pinged"


FAILURES: dict[str, int] = {}


@bus.reacts_to(
    "tests.Pinged",
    name="tests.record_ping",
    replay_safe=True,
    reset=lambda: Heartbeat.objects.filter(name__startswith="ping:").delete(),
)
def record_ping(event):
    Heartbeat.objects.create(name=f"ping:{event.payload['tag']}:{uuid.uuid4().hex[:8]}", beat_at=event.occurred_on)


@bus.reacts_to("tests.Pinged", name="tests.flaky", batch=True, batch_size=50)
def flaky(events):
    for event in events:
        tag = event.payload["tag"]
        if tag.startswith("poison"):
            FAILURES[tag] = FAILURES.get(tag, 0) + 1
            raise RuntimeError(f"cannot digest {tag}")
        Heartbeat.objects.create(name=f"flaky:{tag}", beat_at=event.occurred_on)


AUDIENCE: set[str] = set()


@bus.reacts_to("tests.Pinged", name="tests.choosy", audience=lambda types: types & AUDIENCE)
def choosy(event):
    Heartbeat.objects.create(name=f"choosy:{event.payload['tag']}", beat_at=event.occurred_on)


def ping(tag: str, version: int = 1) -> RecordedEvent:
    return RecordedEvent(Pinged(tag, event_version=version), at("2025-01-01 00:00"), "Ping", tag, 1, None)


def pings(tag: str) -> int:
    return Heartbeat.objects.filter(name__startswith=f"ping:{tag}:").count()


def test_events_and_one_delivery_per_subscriber_commit_with_the_transaction():
    with transaction.atomic():
        [event] = append([ping("a")])
    stored = StoredEvent.objects.get(event_id=event.event_id)
    assert stored.payload == {"tag": "a"} and stored.position == event.position
    handlers = set(EventDelivery.objects.filter(event=stored).values_list("handler", flat=True))
    assert {"tests.record_ping", "tests.flaky"} <= handlers


def test_a_handler_gets_deliveries_only_while_its_audience_wants_the_event_type(drain):
    with transaction.atomic():
        append([ping("unwanted")])
    AUDIENCE.add("tests.Pinged")
    try:
        with transaction.atomic():
            append([ping("wanted")])
    finally:
        AUDIENCE.clear()
    choosy_deliveries = EventDelivery.objects.filter(handler="tests.choosy")
    assert list(choosy_deliveries.values_list("event__payload__tag", flat=True)) == ["wanted"]
    assert EventDelivery.objects.filter(handler="tests.record_ping").count() == 2  # the others get both
    drain()
    assert list(Heartbeat.objects.filter(name__startswith="choosy:").values_list("name", flat=True)) == [
        "choosy:wanted"
    ]


def test_nothing_is_stored_when_the_transaction_rolls_back():
    before = StoredEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        append([ping("b")])
        raise RuntimeError("command failed after appending")
    assert StoredEvent.objects.count() == before
    assert not EventDelivery.objects.filter(event__payload__tag="b").exists()


@pytest.mark.django_db(transaction=True)
def test_append_outside_a_transaction_is_refused():
    assert transaction.get_autocommit()
    with pytest.raises(RuntimeError, match="inside the transaction"):
        append([ping("c")])
    assert not StoredEvent.objects.filter(payload__tag="c").exists()


def test_the_event_store_is_append_only():
    with transaction.atomic():
        append([ping("d")])
    stored = StoredEvent.objects.latest("position")
    with pytest.raises(TypeError):
        stored.save()
    with pytest.raises(TypeError):
        stored.delete()
    with pytest.raises(TypeError):
        StoredEvent.objects.filter(pk=stored.pk).update(payload={})
    with pytest.raises(TypeError):
        StoredEvent.objects.filter(pk=stored.pk).delete()


def test_a_delivery_handled_twice_has_one_effect(drain):
    with transaction.atomic():
        append([ping("once")])
    delivery = EventDelivery.objects.get(event__payload__tag="once", handler="tests.record_ping")
    assert bus.run_deliveries("tests.record_ping", [delivery.pk]) == 1
    assert bus.run_deliveries("tests.record_ping", [delivery.pk]) == 0  # the ledger says: done
    assert pings("once") == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DONE and delivery.attempts == 1


def test_correlation_and_causation_are_carried(drain):
    with new_chain(correlation_id="chain-42"), transaction.atomic():
        [event] = append([ping("corr")])
    assert event.correlation_id == "chain-42" and event.causation_id is None


def test_failing_handler_retries_with_backoff_then_shows_as_failed(settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    with transaction.atomic():
        append([ping("poison-1")])
    delivery = EventDelivery.objects.get(event__payload__tag="poison-1", handler="tests.flaky")
    before = timezone.now()
    bus.run_deliveries("tests.flaky", [delivery.pk])
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING and delivery.attempts == 1
    assert delivery.dispatch_after >= before + bus.retry_delay(1)
    assert "cannot digest poison-1" in delivery.last_error
    for _ in range(2):
        bus.run_deliveries("tests.flaky", [delivery.pk])
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
    assert bus.retry_delay(2) == 2 * bus.retry_delay(1)
    # staff retry gives it a fresh set of attempts
    assert bus.retry_failed([delivery.pk]) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.RETRYING and delivery.attempts == 0


def test_one_poison_event_does_not_hold_back_its_batch():
    with transaction.atomic():
        append([ping("good-1"), ping("poison-2"), ping("good-2")])
    ids = list(
        EventDelivery.objects.filter(
            handler="tests.flaky", event__payload__tag__in=["good-1", "poison-2", "good-2"]
        ).values_list("pk", flat=True)
    )
    assert bus.run_deliveries("tests.flaky", ids) == 2
    assert Heartbeat.objects.filter(name__in=["flaky:good-1", "flaky:good-2"]).count() == 2
    statuses = dict(EventDelivery.objects.filter(pk__in=ids).values_list("event__payload__tag", "status"))
    assert statuses == {"good-1": "done", "good-2": "done", "poison-2": "retrying"}


def test_relay_runs_what_is_due_and_leaves_fresh_deliveries_alone(settings):
    settings.EVENT_DISPATCH = "inline"
    with transaction.atomic():
        append([ping("relayed")])
    delivery = EventDelivery.objects.get(event__payload__tag="relayed", handler="tests.record_ping")
    assert bus.relay() == 0  # not yet due: the after-commit dispatch owns it
    assert pings("relayed") == 0
    EventDelivery.objects.filter(pk=delivery.pk).update(dispatch_after=timezone.now() - timedelta(seconds=1))
    assert bus.relay() >= 1
    assert pings("relayed") == 1


def test_a_delivery_for_a_handler_that_no_longer_exists_is_failed_with_the_reason_not_relayed_forever(settings):
    settings.EVENT_DISPATCH = "inline"
    with transaction.atomic():
        [event] = append([ping("orphan")])
    # A handler renamed or removed since the event was appended left its delivery behind.
    EventDelivery.objects.create(
        event_id=event.position, handler="tests.gone_away", dispatch_after=timezone.now() - timedelta(seconds=1)
    )
    assert bus.relay() >= 1
    orphan = EventDelivery.objects.get(event_id=event.position, handler="tests.gone_away")
    assert orphan.status == DeliveryStatus.FAILED and orphan.attempts == 1
    assert "No handler named tests.gone_away is registered" in orphan.last_error
    # Failed is final: the relay leaves it alone, and drain() names it as a failure.
    EventDelivery.objects.filter(pk=orphan.pk).update(dispatch_after=timezone.now() - timedelta(seconds=1))
    assert not EventDelivery.objects.filter(pk=orphan.pk, status__in=OPEN_STATUSES).exists()
    with pytest.raises(bus.DeliveriesFailed, match="tests.gone_away"):
        bus.drain()


@bus.reacts_to("tests.Pinged", name="tests.heir", replaces=("tests.split_up",))
def heir(event):
    Heartbeat.objects.create(name=f"heir:{event.payload['tag']}", beat_at=event.occurred_on)


def test_a_delivery_for_a_renamed_handler_is_handed_over_to_its_successor_once(settings):
    settings.EVENT_DISPATCH = "inline"
    with transaction.atomic():
        [event] = append([ping("renamed")])  # the successor got its own delivery of this one: ran once
    EventDelivery.objects.filter(event_id=event.position, handler="tests.heir").delete()  # appended before it
    # Deployed while a delivery for the old name was still open.
    old = EventDelivery.objects.create(
        event_id=event.position, handler="tests.split_up", dispatch_after=timezone.now() - timedelta(seconds=1)
    )
    Heartbeat.objects.filter(name="heir:renamed").delete()
    assert bus.relay() >= 1  # finds the old row and hands it over
    old.refresh_from_db()
    assert old.status == DeliveryStatus.DONE and old.last_error == "Handed over to tests.heir."
    successor = EventDelivery.objects.get(event_id=event.position, handler="tests.heir")
    assert successor.status == DeliveryStatus.PENDING
    assert bus.relay() >= 1  # the successor's delivery is due now
    successor.refresh_from_db()
    assert successor.status == DeliveryStatus.DONE
    assert Heartbeat.objects.filter(name="heir:renamed").count() == 1
    # A second hand-over of the same event (a duplicate row) adds nothing: one delivery per handler.
    again = EventDelivery.objects.create(
        event_id=event.position, handler="tests.split_up.old", dispatch_after=timezone.now()
    )
    assert bus.fail_unknown_handler("tests.split_up.old", [again.pk]) == 1  # no successor: failed
    EventDelivery.objects.filter(pk=again.pk).delete()


def test_live_delivery_to_a_handler_waits_while_it_is_replayed_and_runs_once_after(settings):
    settings.EVENT_DISPATCH = "inline"
    with transaction.atomic():
        append([ping("fenced")])
    live = EventDelivery.objects.get(event__payload__tag="fenced", handler="tests.record_ping")
    with bus.replay_fence("tests.record_ping"):
        assert bus.run_deliveries("tests.record_ping", [live.pk]) == 0  # a worker during the replay
        live.refresh_from_db()
        assert live.status == DeliveryStatus.PENDING and live.dispatch_after > timezone.now()
        assert pings("fenced") == 0
        assert bus.run_deliveries("tests.flaky", []) == 0 and not bus.replay_fenced("tests.flaky")
    # the fence is down: the deferred delivery is due at once, the relay runs it, once
    assert not bus.replay_fenced("tests.record_ping")
    assert bus.relay() >= 1
    live.refresh_from_db()
    assert live.status == DeliveryStatus.DONE and pings("fenced") == 1
    assert bus.relay() == 0 and pings("fenced") == 1


def test_old_versions_are_upcast_on_read():
    @upcaster("tests.Pinged", from_version=1)
    def add_colour(payload):
        return payload | {"colour": "blue"}

    try:
        with transaction.atomic():
            append([ping("old")])
        [event] = [e for e in read(event_types=["tests.Pinged"]) if e.payload["tag"] == "old"]
        assert event.event_version == 2 and event.payload == {"tag": "old", "colour": "blue"}
        assert StoredEvent.objects.get(event_id=event.event_id).payload == {"tag": "old"}  # stored as written
    finally:
        from sharedkernel.events import _UPCASTERS

        _UPCASTERS.pop(("tests.Pinged", 1), None)


def test_replay_reruns_a_handler_over_stored_events(drain):
    with transaction.atomic():
        append([ping("r1"), ping("r2")])
    drain()
    assert pings("r1") == 1
    out, err = StringIO(), StringIO()
    call_command("replay_events", "--handler", "tests.record_ping", "--reset", stdout=out, stderr=err)
    assert pings("r1") == 1 and pings("r2") == 1  # reset, then rebuilt: same result
    assert "replayed" in out.getvalue()
    assert "tests.record_ping" in err.getvalue()  # the progress bar


def test_replay_refuses_handlers_with_outside_effects_and_unknown_names():
    with pytest.raises(CommandError, match="not replay-safe"):
        call_command("replay_events", "--handler", "tests.flaky", "--no-progress")
    with pytest.raises(CommandError, match="Unknown handler"):
        call_command("replay_events", "--handler", "nope.nothing", "--no-progress")
