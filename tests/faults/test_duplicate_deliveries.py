"""Every delivery made twice: the ledger (the delivery row a handler claims in its own transaction)
makes the copy a no-op in all four contexts."""

from __future__ import annotations

from collections import defaultdict

from sharedkernel.bus import send_grouped
from sharedkernel.models import EventDelivery
from tests.faults.bill_run import BILL_RUN, assert_one_bill_run, effects, listen, populate, renew_all
from tests.faults.conftest import FAULTS, queue_empty, settle_everything, wait_until

pytestmark = FAULTS

N = BILL_RUN


def test_a_bill_run_with_every_delivery_sent_twice_and_then_all_again_has_one_effect_each(
    broker, settings, smtp_sink, receiver
):
    # given 100 paying subscriptions, an endpoint listening, and a bus that sends every message twice
    population = populate(N, settings)
    listen(receiver)
    settings.OUTBOX_DUPLICATE_DELIVERIES = True
    broker.worker(OUTBOX_DUPLICATE_DELIVERIES="1")
    before = effects(smtp_sink, receiver)
    first_new = EventDelivery.objects.order_by("-pk").values_list("pk", flat=True).first()

    # when beat's renewal job runs and the worker drains the whole chain
    renew_all(population)
    settle_everything()

    # then every effect happened once
    assert_one_bill_run(before, N, smtp_sink, receiver)
    bill_run = EventDelivery.objects.filter(pk__gt=first_new)
    assert bill_run.exclude(status="done").count() == 0
    assert sorted(set(bill_run.values_list("attempts", flat=True))) == [1]  # the copies claimed nothing

    # and when every delivery of the bill run is sent again (twice), nothing changes
    after = effects(smtp_sink, receiver)
    by_handler = defaultdict(list)
    for handler, pk in bill_run.values_list("handler", "pk"):
        by_handler[handler].append(pk)
    resent = sum(len(ids) for ids in by_handler.values())
    send_grouped((handler, pk) for handler, ids in by_handler.items() for pk in ids)
    wait_until(lambda: queue_empty(broker), timeout=60, what="the re-sent deliveries taken and acknowledged")
    settle_everything()
    assert resent > 10 * N
    assert effects(smtp_sink, receiver) == after
    assert sorted(set(bill_run.values_list("attempts", flat=True))) == [1]
