"""Notifications' ACL: upstream payloads become the facts its reactions take (no database)."""

from __future__ import annotations

from notifications import acl

DUE = {
    "customer_id": "c1",
    "customer_email": "cy@example.com",
    "customer_name": "Cy",
    "invoice_number": "INV-1",
    "amount": {"amount": "12.00", "currency": "USD"},
    "update_payment_method_url": "https://x/pm",
}


def test_a_dunning_reminder_grows_more_urgent_and_the_last_says_so():
    assert acl.dunning_escalated({**DUE, "level": 2}).context["urgency"] == "Second notice"
    assert acl.dunning_escalated({**DUE, "level": 7}).context["urgency"] == "Urgent"
    final = acl.dunning_escalated({**DUE, "level": 1, "final": True})
    assert final.context["urgency"] == "Final notice" and final.context["final"] is True
    assert (final.email, final.name, final.context["amount"]) == ("cy@example.com", "Cy", "12.00 USD")


def test_a_plan_change_leaves_the_trial_unless_still_trialing():
    assert acl.plan_changed({"subscription_id": "s1", "status": "trialing"}).still_trialing
    assert not acl.plan_changed({"subscription_id": "s1", "status": "active"}).still_trialing


def test_a_price_change_says_whether_it_is_a_rise():
    payload = {
        "subscription_id": "s1",
        "customer_id": "c1",
        "plan": {"name": "Team"},
        "old_price": {"amount": "10.00", "currency": "USD"},
        "new_price": {"amount": "9.00", "currency": "USD"},
        "effective_at": "2025-04-01T00:00:00+00:00",
    }
    fact = acl.price_change_scheduled(payload)
    assert not fact.rise and fact.effective_on == "2025-04-01" and fact.new_price == "9.00 USD"
