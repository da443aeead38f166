"""A timeline draws each event under the event that caused it; what nothing shown caused is a root."""

from __future__ import annotations

import uuid

from config.staff import causation_tree
from sharedkernel.models import StoredEvent


def _event(position: int, event_type: str, cause: StoredEvent | None = None, causation_id=None) -> StoredEvent:
    return StoredEvent(
        position=position,
        event_id=uuid.uuid4(),
        event_type=event_type,
        causation_id=str(cause.event_id) if cause else causation_id,
    )


def _shape(nodes, depth=0):
    return [line for n in nodes for line in [(depth, n.event.event_type), *_shape(n.children, depth + 1)]]


def test_each_event_hangs_under_its_cause_and_unknown_causes_are_roots():
    changed = _event(1, "PlanChanged")
    generated = _event(2, "InvoiceGenerated", changed)
    taxed = _event(3, "TaxCalculated", generated)
    finalized = _event(4, "InvoiceFinalized", taxed)
    mailed = _event(5, "EmailSent", finalized)
    attempted = _event(6, "PaymentAttempted", finalized)
    retried = _event(7, "PaymentAttempted", causation_id=str(uuid.uuid4()))  # started by time: not shown
    tree = causation_tree([changed, generated, taxed, finalized, mailed, attempted, retried])
    assert _shape(tree) == [
        (0, "PlanChanged"),
        (1, "InvoiceGenerated"),
        (2, "TaxCalculated"),
        (3, "InvoiceFinalized"),
        (4, "EmailSent"),
        (4, "PaymentAttempted"),
        (0, "PaymentAttempted"),
    ]
    assert tree[0].children[0].cause is changed
    assert tree[1].cause is None
