"""Every published event survives a JSON round trip, and the envelope is complete."""

import dataclasses
import json
import types
import typing
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from sharedkernel.events import EVENT_CLASSES, Event, decode, encode, upcast, upcaster
from sharedkernel.values import EmailAddress, Money, UnitRate


def sample(hint):
    """A non-trivial value of the declared type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return sample(next(a for a in args if a is not type(None)))
    if origin is list:
        return [sample(args[0]), sample(args[0])]
    if origin is dict:
        return {"api_calls": sample(args[1])}
    if hint is str:
        return "value-ü"
    if hint is bool:
        return True
    if hint is int:
        return 42
    if hint is Money:
        return Money("1234.57", "USD")
    if hint is UnitRate:
        return UnitRate("0.000125", "USD")
    if hint is EmailAddress:
        return EmailAddress("ada@example.com")
    if hint is datetime:
        return datetime(2025, 1, 31, 23, 59, 58, tzinfo=UTC)
    if hint is date:
        return date(2024, 2, 29)
    if hint is Decimal:
        return Decimal("0.0725")
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: sample(hints[f.name]) for f in dataclasses.fields(hint)})
    raise AssertionError(f"no sample for {hint}")


def build(cls: type[Event]) -> Event:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: sample(hints[f.name]) for f in dataclasses.fields(cls)})


def test_the_published_language_is_loaded():
    # Every context's events.py is imported at start-up (sharedkernel.apps).
    contexts = {name.split(".")[0] for name in EVENT_CLASSES}
    assert "subscriptions" in contexts
    assert len(EVENT_CLASSES) >= 15


@pytest.mark.parametrize("event_type", sorted(EVENT_CLASSES))
def test_every_event_survives_a_json_round_trip(event_type):
    cls = EVENT_CLASSES[event_type]
    event = build(cls)
    wire = json.loads(json.dumps(event.payload()))
    assert wire == event.payload()
    assert cls.from_payload(wire) == event


@pytest.mark.parametrize("event_type", sorted(EVENT_CLASSES))
def test_every_event_is_documented_and_named_in_the_past_tense_of_its_context(event_type):
    cls = EVENT_CLASSES[event_type]
    context, name = event_type.split(".")
    # declared in its own context's events module (or, split by aggregate, the events package)
    assert cls.__module__.split(".")[:2] == [context, "events"]
    assert cls.aggregate_type and cls.aggregate_id_field
    assert name[0].isupper()
    assert (cls.__doc__ or "").strip(), f"{event_type} needs a docstring saying what happened"
    assert build(cls).aggregate_id


def test_floats_and_naive_times_cannot_enter_a_payload():
    with pytest.raises(TypeError):
        encode(0.5)
    with pytest.raises(ValueError):
        encode(datetime(2025, 1, 1))


def test_decode_reads_back_optional_and_nested_values():
    assert decode(Money | None, None) is None
    assert decode(list[Money], [{"amount": "1.00", "currency": "EUR"}]) == [Money("1", "EUR")]
    assert decode(UnitRate, {"amount": "0.000125", "currency": "USD"}) == UnitRate("0.000125", "USD")
    assert decode(uuid.UUID, "12345678-1234-5678-1234-567812345678").hex == "12345678123456781234567812345678"


def test_upcasters_chain_old_versions_to_the_current_shape():
    @upcaster("tests.Renamed", from_version=1)
    def v1_to_v2(payload):
        payload["full_name"] = payload.pop("name")
        return payload

    @upcaster("tests.Renamed", from_version=2)
    def v2_to_v3(payload):
        payload["tags"] = []
        return payload

    assert upcast("tests.Renamed", 1, {"name": "Ada"}) == (3, {"full_name": "Ada", "tags": []})
    assert upcast("tests.Renamed", 3, {"full_name": "Ada", "tags": []}) == (3, {"full_name": "Ada", "tags": []})
    with pytest.raises(RuntimeError):
        upcaster("tests.Renamed", from_version=1)(v1_to_v2)
