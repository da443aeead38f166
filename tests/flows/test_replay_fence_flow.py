"""replay_events fences live delivery to the handler it replays, with the real worker running."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command

from analytics.models import CustomerName
from sharedkernel import bus
from sharedkernel.models import OPEN_STATUSES, DeliveryStatus, EventDelivery
from subscriptions import commands as subs
from tests.conftest import wait_until_handled

pytestmark = pytest.mark.flow

HANDLER = "analytics.project_customer_names"


def test_live_deliveries_wait_for_a_replay_of_their_handler_and_run_once_after(flow):
    subs.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB")
    wait_until_handled()
    with bus.replay_fence(HANDLER):  # what replay_events holds while it replays HANDLER
        bob, _ = subs.register_customer(name="Bob", email="bob@example.com", currency="USD", country="GB")
        deadline = time.monotonic() + 30
        # the worker runs every other reaction to Bob, but leaves the fenced handler's delivery open
        while EventDelivery.objects.filter(status__in=OPEN_STATUSES).exclude(handler=HANDLER).exists():
            assert time.monotonic() < deadline, "the other reactions did not finish"
            bus.relay()
            time.sleep(0.05)
        fenced = EventDelivery.objects.get(handler=HANDLER, event__aggregate_id=str(bob.pk))
        assert fenced.status == DeliveryStatus.PENDING
        assert not CustomerName.objects.filter(customer_id=bob.pk).exists()
        call_command("replay_events", "--handler", HANDLER, "--no-progress")  # the replay itself
    wait_until_handled()
    fenced.refresh_from_db()
    assert fenced.status == DeliveryStatus.DONE
    assert sorted(CustomerName.objects.values_list("name", flat=True)) == ["Ada", "Bob"]
