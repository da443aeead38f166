"""Explicit waiting for an upstream fact (sharedkernel.waiting): a normal race between contexts is a
WAITING delivery that runs when the fact arrives, not a logged failure retried with backoff."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from sharedkernel import bus
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.eventstore import append
from sharedkernel.models import DeliveryStatus, EventDelivery, Heartbeat
from tests.conftest import at
from tests.helpers import TaggedEvent


@dataclass(frozen=True)
class ParcelSent(TaggedEvent):
    """A parcel that can only be delivered once its address is known."""

    event_type: str = "tests.ParcelSent"


@dataclass(frozen=True)
class AddressGiven(ParcelSent):
    event_type: str = "tests.AddressGiven"


def address_needed(tag: str) -> str:
    return f"address of {tag}"


@bus.reacts_to("tests.ParcelSent", name="tests.deliver_parcels", batch=True, batch_size=50)
def deliver_parcels(events):
    known = set(Heartbeat.objects.filter(name__startswith="address:").values_list("name", flat=True))
    for event in events:
        tag = event.payload["tag"]
        if f"address:{tag}" not in known:
            bus.wait_for(event, address_needed(tag))
            continue
        Heartbeat.objects.create(name=f"delivered:{tag}", beat_at=event.occurred_on)


@bus.reacts_to("tests.AddressGiven", name="tests.note_address")
def note_address(event):
    tag = event.payload["tag"]
    Heartbeat.objects.create(name=f"address:{tag}", beat_at=event.occurred_on)
    bus.arrived(address_needed(tag))


def sent(tag: str) -> RecordedEvent:
    return RecordedEvent(ParcelSent(tag), at("2025-01-01 00:00"), "Parcel", tag, 1, None)


def address(tag: str) -> RecordedEvent:
    return RecordedEvent(AddressGiven(tag), at("2025-01-01 00:00"), "Address", tag, 1, None)


def delivered(tag: str) -> bool:
    return Heartbeat.objects.filter(name=f"delivered:{tag}").exists()


def delivery_of(tag: str) -> EventDelivery:
    return EventDelivery.objects.get(event__payload__tag=tag, handler="tests.deliver_parcels")


@pytest.mark.django_db(transaction=True)
def test_a_delivery_waits_for_its_fact_without_an_error_and_runs_once_when_it_arrives(settings, caplog):
    settings.EVENT_DISPATCH = "inline"
    caplog.set_level(logging.INFO)
    with transaction.atomic():
        append([sent("p1")])  # the parcel before its address: the race
    waiting = delivery_of("p1")
    assert waiting.status == DeliveryStatus.WAITING
    assert waiting.waiting_for == "address of p1"
    assert waiting.attempts == 0 and waiting.last_error == ""  # not a failure
    assert waiting.dispatch_after > timezone.now()
    assert not delivered("p1")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    with transaction.atomic():
        append([address("p1")])  # its handler says the address arrived; after commit p1 runs
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.DONE and waiting.attempts == 1
    assert Heartbeat.objects.filter(name="delivered:p1").count() == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.django_db
def test_in_a_batch_only_the_event_that_waits_waits():
    with transaction.atomic():
        Heartbeat.objects.create(name="address:known", beat_at=timezone.now())
        append([sent("known"), sent("unknown")])
    ids = list(EventDelivery.objects.filter(handler="tests.deliver_parcels").values_list("pk", flat=True))
    assert bus.run_deliveries("tests.deliver_parcels", ids) == 2
    assert delivered("known") and not delivered("unknown")
    assert delivery_of("known").status == DeliveryStatus.DONE
    assert delivery_of("unknown").status == DeliveryStatus.WAITING


@pytest.mark.django_db
def test_without_arrived_the_relay_rechecks_it_when_due():
    with transaction.atomic():
        append([sent("p2")])
    bus.run_deliveries("tests.deliver_parcels", [delivery_of("p2").pk])
    assert delivery_of("p2").status == DeliveryStatus.WAITING
    Heartbeat.objects.create(name="address:p2", beat_at=timezone.now())  # came without a word
    EventDelivery.objects.filter(pk=delivery_of("p2").pk).update(dispatch_after=timezone.now() - timedelta(seconds=1))
    assert bus.relay() == 1
    assert delivery_of("p2").status == DeliveryStatus.DONE and delivered("p2")


@pytest.mark.django_db
def test_drain_runs_a_waiting_delivery_once_its_fact_comes_and_names_one_that_never_does():
    with transaction.atomic():
        append([sent("p3"), address("p3")])
    bus.drain()
    assert delivered("p3") and delivery_of("p3").status == DeliveryStatus.DONE

    with transaction.atomic():
        append([sent("lost")])
    with pytest.raises(bus.DeliveriesWaiting, match="waits for address of lost"):
        bus.drain()
    assert delivery_of("lost").status == DeliveryStatus.WAITING


@pytest.mark.django_db
def test_a_fact_that_never_comes_fails_the_delivery_after_the_limit_saying_what_it_waited_for(settings):
    settings.OUTBOX_WAIT_LIMIT_SECONDS = 60
    with transaction.atomic():
        append([sent("p4")])
    EventDelivery.objects.filter(pk=delivery_of("p4").pk).update(created_at=timezone.now() - timedelta(minutes=2))
    bus.run_deliveries("tests.deliver_parcels", [delivery_of("p4").pk])
    failed = delivery_of("p4")
    assert failed.status == DeliveryStatus.FAILED
    assert "for: address of p4" in failed.last_error and failed.waiting_for == "address of p4"
    with pytest.raises(bus.DeliveriesFailed, match="address of p4"):
        bus.raise_if_failed()
    EventDelivery.objects.filter(pk=failed.pk).delete()


def test_waiting_is_only_for_handlers():
    with pytest.raises(RuntimeError, match="for event handlers"):
        bus.wait_for("some-event-id", "anything")


def test_the_recheck_grows_with_the_wait_up_to_a_minute():
    from sharedkernel.waiting import recheck_delay

    assert recheck_delay(timedelta(0)) == timedelta(seconds=1)
    assert recheck_delay(timedelta(seconds=8)) == timedelta(seconds=8)
    assert recheck_delay(timedelta(hours=3)) == timedelta(minutes=1)
