"""UsageRecorded writes its payload out by hand (a batch carries up to a thousand totals); it must stay
exactly what the generic encoder gives, and survive the JSON round trip every event type survives."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

from subscriptions.events import UsageRecorded, UsageTotal


def generic_payload(event) -> dict:
    """The payload as sharedkernel's encoder builds it for any event (the base class's method)."""
    return super(UsageRecorded, event).payload()


def test_the_written_out_payload_is_the_generic_encoding():
    # given totals over two periods, one start given in another zone than UTC
    start = datetime(2025, 5, 1, tzinfo=UTC)
    other = datetime(2025, 6, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    totals = [
        UsageTotal(subscription_id=f"s{i}", customer_id=f"c{i % 3}", metric="api_calls", quantity=i, period_start=p)
        for i, p in enumerate([start, other, start, other, start])
    ]
    event = UsageRecorded(batch_id="b1", accepted=5, duplicates=2, totals=totals)
    # when
    payload = event.payload()
    # then
    assert payload == generic_payload(event)
    assert payload["totals"][1]["period_start"] == "2025-06-01T00:00:00+00:00"  # in UTC, as encode writes it
    assert set(payload) == {f.name for f in dataclasses.fields(UsageRecorded)}
    assert UsageRecorded.from_payload(json.loads(json.dumps(payload))) == event


def test_an_empty_batch_encodes_as_the_generic_encoder_does():
    event = UsageRecorded(batch_id="b2", accepted=0, duplicates=3, totals=[])
    assert event.payload() == generic_payload(event) == {"batch_id": "b2", "accepted": 0, "duplicates": 3, "totals": []}
