"""The database connection dropped in the middle of a command (after the aggregate's UPDATE, at the
event store's INSERT): the whole transaction is gone — no changed row, no event, no delivery, nothing
sent — the client gets a clean 503, and the retry does the work once."""

from __future__ import annotations

import psycopg
from django.db import connection

from billing.models import Invoice
from sharedkernel.models import EventDelivery, StoredEvent
from subscriptions.models import Subscription
from tests.conftest import _database_url
from tests.faults.bill_run import populate
from tests.faults.conftest import FAULTS, settle_everything
from tests.faults.test_concurrent_plan_changes import define_plans
from tests.helpers import api_client, staff_user

pytestmark = FAULTS


def state(sub_id: str) -> dict:
    sub = Subscription.objects.get(pk=sub_id)
    return {
        "plan": str(sub.plan_id),
        "version": sub.version,
        "events": StoredEvent.objects.count(),
        "deliveries": EventDelivery.objects.count(),
        "open_deliveries": EventDelivery.objects.exclude(status="done").count(),
        "invoices": Invoice.objects.count(),
    }


def test_a_connection_dropped_mid_command_leaves_no_trace_and_the_retry_works_once(flow, settings):
    # given an active subscription and a dearer plan
    population = populate(1, settings)
    [sub_id] = population.subscriptions
    [pro_plus] = define_plans(settings, 1)
    staff = api_client(staff_user())
    before = state(sub_id)

    # when the server drops the connection as the command appends its events
    killer = psycopg.connect(_database_url(connection.settings_dict), autocommit=True)
    dropped = []

    def drop_at_the_event_insert(execute, sql, params, many, context):
        if not dropped and sql.lstrip().upper().startswith("INSERT") and StoredEvent._meta.db_table in sql:
            assert context["connection"].in_atomic_block  # mid-command: the aggregate's row is written
            pid = context["connection"].connection.info.backend_pid
            killer.execute("SELECT pg_terminate_backend(%s)", [pid])
            dropped.append(pid)
        return execute(sql, params, many, context)

    try:
        with connection.execute_wrapper(drop_at_the_event_insert):
            response = staff.post(f"/api/v1/subscriptions/{sub_id}/change-plan/", {"plan": pro_plus}, format="json")
    finally:
        killer.close()
    connection.close_if_unusable_or_obsolete()  # what Django does at the end of every request

    # then the client is told cleanly, and nothing of the command survived
    assert dropped, "the command never reached the event store"
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "database_unavailable"
    assert state(sub_id) == before

    # and the retry changes the plan once, billed once
    again = staff.post(f"/api/v1/subscriptions/{sub_id}/change-plan/", {"plan": pro_plus}, format="json")
    assert again.status_code == 200, again.content
    settle_everything()
    assert str(Subscription.objects.get(pk=sub_id).plan_id) == pro_plus
    types = list(StoredEvent.objects.filter(aggregate_id=sub_id).values_list("event_type", flat=True))
    assert types.count("subscriptions.PlanChanged") == 1
    prorated = Invoice.objects.filter(subscription_id=sub_id, billing_reason="subscription_update")
    assert list(prorated.values_list("status", flat=True)) == ["paid"]
    assert Invoice.objects.count() == before["invoices"] + 1
