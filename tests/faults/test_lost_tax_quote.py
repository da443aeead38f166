"""The harness acts as beat's retry_tax for a quote a killed worker lost in a bill run.

The worker-killed test strands such a quote only when the kill lands between a handler's commit
and the quote's answer; this makes that case certain, without a worker. A bill run happens at a
moment the test names (a period's end, weeks ahead of the wall clock), and the lost draft is due
for retry_tax at that moment plus the backoff: acting as retry_tax at wall-clock time (what the
harness did, and why CI's worker-killed test once waited 120 s) finds nothing due.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.commands import TAX_RETRY_BACKOFF
from billing.models import Invoice, InvoiceStatus, TaxRate
from sharedkernel.scheduling import run_job
from sharedkernel.values import Money
from subscriptions import commands as subs
from subscriptions.models import Subscription
from tests.billing.helpers import WorkerDied, customer, plan, tax_worker_dies
from tests.faults.conftest import LIVE_MARGIN, _when_lost_quotes_are_due

pytestmark = pytest.mark.django_db(transaction=True)  # no worker, no private broker: not a FAULTS module


def test_a_quote_lost_in_a_bill_run_is_due_at_the_bill_runs_moment_not_the_wall_clocks(drain, settings):
    # given a paid subscription whose renewal's tax quote is lost: the worker dies asking for it
    TaxRate.objects.create(country="GB", region="", rate="0.20", name="VAT")
    c = customer(drain, country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(plan(price="30.00 USD").id))
    drain()
    period_end = Subscription.objects.get(pk=sub.pk).current_period_end
    with tax_worker_dies(settings):
        assert run_job("subscriptions.renew_subscriptions", now=period_end + timedelta(minutes=1)) == 1
        with pytest.raises(WorkerDied):
            drain()
    renewal = Invoice.objects.get(customer_id=c.id, status=InvoiceStatus.DRAFT)
    assert not renewal.tax_calculated and renewal.tax_retry_at > period_end

    # when beat's retry_tax is acted at wall-clock time, then nothing is due yet
    by_wall_clock = timezone.now() + TAX_RETRY_BACKOFF[0] - LIVE_MARGIN
    assert run_job("billing.retry_tax", now=by_wall_clock) == 0

    # when it is acted at the moment the harness now picks, then the draft is quoted and collected
    assert _when_lost_quotes_are_due(by_wall_clock) >= renewal.tax_retry_at
    assert run_job("billing.retry_tax", now=_when_lost_quotes_are_due(by_wall_clock)) == 1
    drain()
    renewal.refresh_from_db()
    assert renewal.status == InvoiceStatus.PAID and renewal.tax == Money("6.00", "USD")
