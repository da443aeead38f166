"""The projection rule of the shared kernel: stored order, each event once, whatever the versions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from sharedkernel.events import DomainEvent
from sharedkernel.projection import AppliedPosition, in_stored_order


def event(position: int | None, version: int, name: str = "Changed") -> DomainEvent:
    return DomainEvent(
        event_id=f"e{position}",
        event_type=f"test.{name}",
        event_version=1,
        occurred_on=datetime(2025, 1, 1, tzinfo=UTC),
        aggregate_type="Thing",
        aggregate_id="t1",
        aggregate_version=version,
        payload={"name": name},
        correlation_id="c",
        position=position,
    )


@dataclass
class Row:
    applied_position: int = 0
    names: tuple[str, ...] = ()


APPLIED = AppliedPosition("applied_position")


def project(row: Row, events) -> Row:
    for e in in_stored_order(events):
        if APPLIED.take(row, e):
            row.names += (e.payload["name"],)
    return row


def test_events_that_share_a_version_are_all_applied_in_stored_order():
    # one command recorded TrialExpired and SubscriptionActivated at version 4; they arrive unsorted
    row = project(Row(), [event(11, 4, "SubscriptionActivated"), event(10, 4, "TrialExpired"), event(3, 1, "Created")])
    assert row.names == ("Created", "TrialExpired", "SubscriptionActivated")
    assert row.applied_position == 11


def test_an_event_at_or_below_the_applied_position_is_a_duplicate():
    row = project(Row(), [event(3, 1, "Created"), event(10, 4, "TrialExpired")])
    project(row, [event(10, 4, "TrialExpired"), event(3, 1, "Created")])  # delivered again
    assert row.names == ("Created", "TrialExpired")
    project(row, [event(10, 4, "TrialExpired"), event(12, 5, "Renewed")])  # a batch half old, half new
    assert row.names == ("Created", "TrialExpired", "Renewed")


def test_an_event_without_a_stored_position_cannot_be_projected():
    with pytest.raises(ValueError, match="no stored position"):
        APPLIED.take(Row(), event(None, 1))
