"""The broker (a private Redis, no persistence) SIGKILLed mid bill run and restarted empty: what it
held is lost, commits in the meantime cannot dispatch — the relay re-sends all of it, once."""

from __future__ import annotations

import time

from config.celery import app
from tests.faults.bill_run import (
    BILL_RUN,
    assert_one_bill_run,
    bill_run_in_progress,
    difference,
    effects,
    listen,
    populate,
    renew_all,
)
from tests.faults.conftest import FAULTS, reset_producers, settle_everything, wait_until

pytestmark = FAULTS

N = BILL_RUN


def test_the_broker_killed_mid_bill_run_and_restarted_loses_nothing_and_doubles_nothing(
    broker, settings, smtp_sink, receiver
):
    # given paying subscriptions and a worker on a private broker
    population = populate(N, settings)
    listen(receiver)
    broker.worker()
    before = effects(smtp_sink, receiver)

    # when the bill run is under way and the broker dies (with the queue it held)
    renew_all(population)
    wait_until(lambda: bill_run_in_progress(before, N), timeout=60, what="the bill run under way", every=0.01)
    broker.redis.kill()
    time.sleep(2)  # the outage lasts: handlers running now commit but cannot dispatch what they record
    assert difference(effects(), before)["paid_cycle_invoices"] < N

    # and comes back empty
    broker.redis.start()
    reset_producers(app)

    # then the relay re-sends what was lost, the worker reconnects, and every effect happens once
    settle_everything()
    assert_one_bill_run(before, N, smtp_sink, receiver)
