"""Every command declares the aggregate it acts on and the events it records, and the declaration is
checked against what it does: an event a command appends without declaring it is refused while the
command runs (the event store asks :func:`sharedkernel.declarations.check_recorded`), so every test
that runs a command checks its declaration; ``tests/conftest.py`` also asserts, at the end of the
session, that every (command, event) pair it saw was declared."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from sharedkernel import bus, declarations, events, handlers
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.catalog import issued_commands, load_declarations, registry
from sharedkernel.commands import command
from sharedkernel.eventstore import append
from sharedkernel.models import StoredEvent


def _recorded(event: events.Event) -> RecordedEvent:
    return RecordedEvent(event, datetime(2026, 1, 1, tzinfo=UTC), "Widget", event.widget_id, 1, None)


@pytest.fixture
def polish_widget():
    """A command of a test kit, declared like every other (registered here, gone afterwards, so the
    parametrised tests over every event never see the kit's events)."""

    @dataclass(frozen=True)
    class WidgetPolished(events.Event):
        event_type = "testkit.WidgetPolished"
        aggregate_type = "Widget"
        aggregate_id_field = "widget_id"
        public = False
        widget_id: str

    @dataclass(frozen=True)
    class WidgetScratched(WidgetPolished):  # the same aggregate and payload (as PlanRestored builds on PlanArchived)
        event_type = "testkit.WidgetScratched"

    @command(aggregate="Widget", records=("testkit.WidgetPolished",), name="testkit.polish_widget")
    def polish(*, widget_id: str, scratch: bool = False) -> None:
        append([_recorded(WidgetPolished(widget_id=widget_id))])
        if scratch:  # a change that forgot to update the declaration
            append([_recorded(WidgetScratched(widget_id=widget_id))])

    yield polish
    for event_type in ("testkit.WidgetPolished", "testkit.WidgetScratched"):
        events.EVENT_CLASSES.pop(event_type, None)
    declarations.COMMANDS.pop("testkit.polish_widget", None)
    handlers._subscribers_cache.clear()


def test_every_command_declares_its_aggregate_and_known_events_of_its_own_context():
    load_declarations()
    ours = ("subscriptions", "billing", "notifications", "analytics", "sharedkernel")
    commands = [c for c in declarations.COMMANDS.values() if c.context in ours]
    assert len(commands) >= 51  # 40 application services and the billing pipeline's 11 steps
    undeclared = sorted(c.name for c in commands if not c.declared)
    assert not undeclared, f"Commands without @command(aggregate=..., records=...): {undeclared}"
    for c in commands:
        unknown = [t for t in c.records if t not in events.EVENT_CLASSES]
        assert not unknown, f"{c.name} declares unknown events {unknown}"
        foreign = [t for t in c.records if t.split(".")[0] != c.context]
        assert not foreign, f"{c.name} declares another context's events {foreign}"


@pytest.mark.django_db(transaction=True)
def test_a_command_that_records_an_undeclared_event_is_refused_and_leaves_nothing_behind(polish_widget):
    polish_widget(widget_id="w1")
    assert list(StoredEvent.objects.values_list("event_type", flat=True)) == ["testkit.WidgetPolished"]
    assert ("testkit.polish_widget", "testkit.WidgetPolished") in declarations.OBSERVED

    with pytest.raises(declarations.UndeclaredEvent, match="testkit.polish_widget .* recorded testkit.WidgetScratched"):
        polish_widget(widget_id="w2", scratch=True)
    # the command's transaction rolled back: not even the declared event of w2 is stored
    assert not StoredEvent.objects.filter(aggregate_id="w2").exists()


@pytest.mark.django_db(transaction=True)
def test_in_production_an_undeclared_event_is_logged_not_refused(settings, caplog, polish_widget):
    settings.COMMAND_RECORDS_CHECK = "log"
    polish_widget(widget_id="w3", scratch=True)
    assert StoredEvent.objects.filter(aggregate_id="w3").count() == 2
    assert "recorded testkit.WidgetScratched, which its @command(records=...) does not declare" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_what_a_policy_records_through_a_command_is_checked_against_that_command(drain):
    from billing.models import BillingAccount
    from subscriptions import commands as subs

    # open_billing_account (a policy) calls billing.open_account, which declares BillingAccountOpened
    customer, _ = subs.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB")
    drain()
    assert BillingAccount.objects.filter(pk=customer.pk).exists()
    assert ("billing.open_account", "billing.BillingAccountOpened") in declarations.OBSERVED
    assert ("subscriptions.register_customer", "subscriptions.CustomerRegistered") in declarations.OBSERVED


def test_the_commands_a_policy_issues_are_read_from_its_code():
    load_declarations()
    assert issued_commands(bus.HANDLERS["billing.open_billing_account"].fn) == {"billing.open_account"}
    assert "subscriptions.suspend_subscription" in issued_commands(
        bus.HANDLERS["subscriptions.suspend_when_dunning_exhausted"].fn
    )
    reg = registry()
    invoice_policies = {h.name for h in reg.handlers if "billing.calculate_tax" in h.issues}
    assert invoice_policies, "InvoiceGenerated → CalculateTax is on the wall"
    assert {"Subscription", "Plan", "Customer"} <= set(reg.aggregates["subscriptions"])
    assert {"Invoice", "Payment", "BillingAccount"} <= set(reg.aggregates["billing"])
    assert {x.name for x in reg.external_systems} >= {
        "Payment gateway",
        "Tax API",
        "Mail server (SMTP)",
        "Webhook receivers",
    }
