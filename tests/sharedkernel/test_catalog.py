"""The event catalogue comes from the code: a new event and policy appear without editing any list,
and the committed docs/EVENTS.md is what `manage.py event_catalog` writes now (CI runs `--check`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from sharedkernel import bus, declarations, events, handlers
from sharedkernel.catalog import catalog, registry, render_markdown
from sharedkernel.commands import command
from sharedkernel.declarations import external_system


@pytest.fixture
def new_event_and_policy():
    @dataclass(frozen=True)
    class GadgetPolished(events.Event):
        event_type = "testapp.GadgetPolished"
        event_version = 2
        aggregate_type = "Gadget"
        aggregate_id_field = "gadget_id"
        gadget_id: str
        shine: int

    @command(aggregate="Gadget", records=("testapp.GadgetPolished",), name="testapp.polish_gadget")
    def polish_gadget(*, gadget_id: str) -> None:
        """PolishGadget: makes it shine."""

    @bus.reacts_to("testapp.GadgetPolished", "subscriptions.CustomerRegistered", name="testapp.admire_gadget")
    def admire_gadget(event):
        polish_gadget(gadget_id=event.payload["gadget_id"])

    @bus.reacts_to("testapp.GadgetPolished", replay_safe=True, name="testapp.gadget_shine")
    def gadget_shine(event):
        return None

    external_system("Gadget polisher", context="testapp", port="testapp.ports:Polisher")
    events.upcaster("testapp.GadgetPolished", from_version=1)(lambda payload: payload)
    yield
    events.EVENT_CLASSES.pop("testapp.GadgetPolished")
    bus.HANDLERS.pop("testapp.admire_gadget")
    bus.HANDLERS.pop("testapp.gadget_shine")
    declarations.COMMANDS.pop("testapp.polish_gadget")
    declarations.EXTERNAL_SYSTEMS.pop("Gadget polisher")
    handlers._subscribers_cache.clear()
    events._UPCASTERS.pop(("testapp.GadgetPolished", 1))


def test_an_event_and_policy_declared_in_code_appear_in_the_catalogue(new_event_and_policy):
    entry = next(e for e in catalog() if e.event_type == "testapp.GadgetPolished")
    assert (entry.context, entry.version, entry.aggregate_type) == ("testapp", 2, "Gadget")
    assert [(f.name, f.type) for f in entry.fields] == [("gadget_id", "str"), ("shine", "int")]
    assert "testapp.admire_gadget" in entry.subscribers  # (beside the webhook fan-out, which takes "*")
    assert entry.upcasters == (1,)
    assert entry.recorded_by == ("testapp.polish_gadget",)
    reg = registry()
    policy = next(h for h in reg.handlers if h.name == "testapp.admire_gadget")
    assert (policy.read_model, policy.issues) == (False, ("testapp.polish_gadget",))
    assert next(h for h in reg.handlers if h.name == "testapp.gadget_shine").read_model
    assert reg.aggregates["testapp"] == ["Gadget"]
    text = render_markdown()
    assert "- Recorded by: `testapp.polish_gadget`" in text
    assert "| `testapp.polish_gadget` | Gadget | `testapp.GadgetPolished` |" in text
    assert "| Gadget polisher | testapp | `testapp.ports:Polisher` |" in text
    assert "### `testapp.GadgetPolished` v2" in text
    assert "`testapp.admire_gadget`" in text
    assert "- Upcasters: v1→v2" in text


def test_known_events_list_their_subscribers():
    entry = next(e for e in catalog() if e.event_type == "subscriptions.CustomerRegistered")
    assert "billing.open_billing_account" in entry.subscribers
    assert entry.location.startswith("subscriptions.events.customers:")


def test_the_committed_catalogue_is_up_to_date():
    call_command("event_catalog", "--check")


def test_the_check_fails_on_a_stale_file(tmp_path, new_event_and_policy):
    stale = tmp_path / "EVENTS.md"
    stale.write_text("# old\n")
    with pytest.raises(CommandError, match="out of date"):
        call_command("event_catalog", "--check", "--output", str(stale))
    call_command("event_catalog", "--output", str(stale))
    call_command("event_catalog", "--check", "--output", str(stale))
    assert "testapp.GadgetPolished" in stale.read_text()


@pytest.mark.django_db
def test_the_board_shows_a_new_event_and_policy_to_staff_only(client, new_event_and_policy):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_user("eve", password="x"))
    assert client.get("/staff/board/").status_code == 302  # to the staff login
    client.force_login(get_user_model().objects.create_user("boss", password="x", is_staff=True))
    page = client.get("/staff/board/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-event="testapp.GadgetPolished"' in html
    assert 'data-handler="testapp.admire_gadget"' in html
    assert 'data-event="billing.InvoiceFinalized"' in html
    # the rest of the wall: its command and aggregate, its read model and outside system
    assert 'data-command="testapp.polish_gadget"' in html
    assert 'data-aggregate="Gadget"' in html
    assert 'class="sticky readmodel" id="readmodel-testapp-gadget_shine"' in html
    assert 'data-external="Gadget polisher"' in html
    # arrows: command → event, event → policy (dashed from another context), policy → command
    arrows = re.findall(
        r'<path class="([a-z ]+)" d="M[^"]+" marker-end="[^"]+" data-from="([^"]+)" data-to="([^"]+)"', html
    )
    assert ("records", "command-testapp-polish_gadget", "event-testapp-GadgetPolished") in arrows
    assert ("reacts", "event-testapp-GadgetPolished", "policy-testapp-admire_gadget") in arrows
    assert ("reacts dashed", "event-subscriptions-CustomerRegistered", "policy-testapp-admire_gadget") in arrows
    assert ("issues", "policy-testapp-admire_gadget", "command-testapp-polish_gadget") in arrows
    assert ("reacts dashed", "event-subscriptions-CustomerRegistered", "policy-billing-open_billing_account") in arrows
    # swimlanes run in the order of the main flows: sign-up/trial, billing, e-mail, analytics
    lanes = re.findall(r'<section class="lane" data-context="([a-z_]+)"', html)
    assert lanes[:4] == ["subscriptions", "billing", "notifications", "analytics"]


@pytest.mark.django_db
def test_a_customer_timeline_shows_its_events_to_staff_only(client):
    from django.contrib.auth import get_user_model

    from subscriptions import commands as subs

    customer, _ = subs.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB")
    url = f"/staff/timeline/?customer={customer.pk}"
    client.force_login(get_user_model().objects.create_user("eve", password="x"))
    assert client.get(url).status_code == 302
    client.force_login(get_user_model().objects.create_user("boss", password="x", is_staff=True))
    html = client.get(url).content.decode()
    assert 'data-event="subscriptions.CustomerRegistered"' in html
    assert "billing.open_billing_account: pending" in html
    assert client.get("/staff/timeline/?subscription=nope").status_code == 404
