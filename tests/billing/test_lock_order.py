"""Two batches that lock overlapping rows must take them in the same order, or PostgreSQL aborts one of
them as a deadlock (a logged error, a retry, a late invoice). Every query that locks a set of rows and
waits for them (``FOR UPDATE`` without ``SKIP LOCKED``) therefore names its order; this runs the invoice
pipeline over several customers at once — drafts, tax, finalizing with credit, collection, a void, a
cancellation, dunning notes, the projections — and reads every lock it took."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import commands as billing
from billing.models import Invoice
from sharedkernel.values import Money
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan

pytestmark = pytest.mark.django_db

_LOCKS_A_SET = re.compile(r"\bIN \(.+\bFOR UPDATE\b(?!.*SKIP LOCKED)", re.DOTALL)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's; SQLite serializes writers")
def test_every_lock_on_a_set_of_rows_is_taken_in_a_stated_order(drain):
    pro = plan(price="30.00 USD")
    paying = [customer(drain, email=f"pay{i}@example.com") for i in range(3)]
    declined = [customer(drain, card="pm_card_chargeDeclined", email=f"no{i}@example.com") for i in range(2)]
    billing.grant_credit(customer_id=str(paying[0].id), amount=Money("5.00", "USD"), reason="goodwill")
    drain()
    with CaptureQueriesContext(connection) as queries:
        started = [subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id)) for c in paying + declined]
        drain()  # the five subscriptions' invoices go through the pipeline in shared batches
        unpaid = Invoice.objects.get(subscription_id=started[-1].id)
        billing.void_invoice(invoice_id=str(unpaid.id), reason="Customer went away")
        subs.cancel_subscription(subscription_id=str(started[-2].id), reason="changed my mind", at_period_end=False)
        drain()
    locks = [q["sql"] for q in queries.captured_queries if _LOCKS_A_SET.search(q["sql"])]
    tables = {re.search(r'FROM "(\w+)"', sql).group(1) for sql in locks}
    assert {"billing_invoice", "billing_payment", "billing_billingaccount"} <= tables, tables
    unordered = [sql for sql in locks if "ORDER BY" not in sql]
    assert not unordered, "\n\n".join(unordered)
