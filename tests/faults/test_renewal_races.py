"""Beat twice (two beats by mistake, or one beat's runs overlapping) and the relay, all at once:
one SubscriptionRenewed and one invoice per (subscription, period)."""

from __future__ import annotations

import threading
from datetime import timedelta

from django.db import connection

from sharedkernel.bus import relay
from sharedkernel.scheduling import run_job
from tests.faults.bill_run import assert_one_bill_run, bill_run_moment, effects, listen, populate
from tests.faults.conftest import FAULTS, settle_everything

pytestmark = FAULTS

N = 40


def test_two_beats_and_the_relay_racing_renew_and_bill_each_period_once(flow, settings, smtp_sink, receiver):
    # given paying subscriptions whose period has ended
    population = populate(N, settings)
    listen(receiver)
    before = effects(smtp_sink, receiver)
    moment = bill_run_moment(population)
    # what the renewal job records is due for the relay at once: it re-sends while dispatch sends
    settings.OUTBOX_REDISPATCH_AFTER = timedelta(0)

    # when two beats run the renewal job at the same moment while the relay runs in a loop
    renewed: list[int] = []
    relayed: list[int] = []
    start = threading.Barrier(3, timeout=30)
    stop = threading.Event()

    def beat() -> None:
        try:
            start.wait()
            renewed.append(run_job("subscriptions.renew_subscriptions", now=moment))
        finally:
            connection.close()

    def relay_loop() -> None:
        try:
            start.wait()
            while not stop.is_set():
                relayed.append(relay())
        finally:
            connection.close()

    threads = [threading.Thread(target=beat), threading.Thread(target=beat), threading.Thread(target=relay_loop)]
    for thread in threads:
        thread.start()
    for thread in threads[:2]:
        thread.join()
    # and a third run once the first two are done (beat's next tick)
    renewed.append(run_job("subscriptions.renew_subscriptions", now=moment))
    stop.set()
    threads[2].join()
    settle_everything()

    # then each subscription renewed once, between them, and each period billed and paid once
    assert sum(renewed) == N and renewed[-1] == 0, renewed
    assert sum(relayed) > 0  # the relay did re-send deliveries the worker was also sent
    assert_one_bill_run(before, N, smtp_sink, receiver)
