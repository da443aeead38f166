"""Plan versions and price changes on the Subscription aggregate (no database)."""

from __future__ import annotations

import pytest

from sharedkernel.errors import InvalidTransition
from sharedkernel.values import Money
from subscriptions.values import PlanTerms
from tests.conftest import at
from tests.subscriptions.factories import names, plan, subscription


def _revise(p, price="59.00 USD", when="2025-02-10 00:00"):
    p.revise(
        PlanTerms(
            name=p.name,
            trial_days=p.trial_days,
            prices=[Money(*price.split())],
            features=[],
            included_usage={},
            overage_rates={},
        ),
        at=at(when),
    )
    return p.pull_events()


def test_a_revision_is_the_next_version_with_its_complete_terms():
    # given a plan at version 1
    p = plan()
    assert p.current_version == 1
    # when it is revised
    [event] = _revise(p)
    # then PlanUpdated carries version 2, its terms and when it became current
    assert event.event.version == 2 and event.event.current_from == at("2025-02-10 00:00")
    assert event.event.prices == [Money("59.00", "USD")]
    version = p.staged_version()
    assert (version.version, version.prices) == (2, [{"amount": "59.00", "currency": "USD"}])


def test_existing_subscriptions_stay_on_their_version_new_ones_get_the_current():
    p = plan()
    old = subscription(on=p, status="active")
    _revise(p)
    new = subscription(on=p)
    assert (old.plan_version, old.price) == (1, Money("49.00", "USD"))
    assert (new.plan_version, new.price) == (2, Money("59.00", "USD"))
    assert new.recorded_events == [] and old.plan.ref(old.plan_version).version == 1


def _schedule(sub, migration_id, *, to_version=2, effective_at="2025-03-31 10:00"):
    """A migration, on 2025-02-11, moving ``sub`` to 59.00 USD from its renewal at ``effective_at``."""
    sub.schedule_price_change(
        migration_id=migration_id,
        to_version=to_version,
        new_price=Money("59.00", "USD"),
        effective_at=at(effective_at),
        at=at("2025-02-11 00:00"),
    )


def _scheduled(p=None):
    p = p or plan()
    sub = subscription(on=p, status="active")  # period 2025-01-31 → 2025-02-28
    _revise(p)
    _schedule(sub, "7e0c0c5e-3d0e-4a53-9d4c-1f1f1f1f1f1f")
    return sub


def test_a_scheduled_change_applies_at_the_first_renewal_on_or_after_its_date():
    sub = _scheduled()
    assert names(sub) == ["PriceChangeScheduled"] and sub.scheduled_price == Money("59.00", "USD")
    sub.pull_events()
    # the renewal before the date keeps the old price
    sub.renew(at=at("2025-02-28 10:00"))
    [renewed] = sub.pull_events()
    assert renewed.event.price == Money("49.00", "USD") and renewed.event.plan.version == 1
    # the renewal at the date moves it: PriceChanged, then the period billed at the new price
    sub.renew(at=at("2025-03-31 10:00"))
    changed, renewed = (e.event for e in sub.pull_events())
    assert changed.event_type == "subscriptions.PriceChanged"
    assert (changed.old_price, changed.new_price, changed.plan.version) == (
        Money("49.00", "USD"),
        Money("59.00", "USD"),
        2,
    )
    assert renewed.price == Money("59.00", "USD") and sub.plan_version == 2 and sub.scheduled_price is None


def test_who_cancels_before_the_date_never_pays_the_new_price():
    sub = _scheduled()
    sub.pull_events()
    sub.cancel(at=at("2025-02-12 00:00"), at_period_end=True)
    assert names(sub) == ["PriceChangeCancelled", "SubscriptionCancellationScheduled"]
    assert sub.recorded_events[0].reason == "cancelled" and sub.scheduled_price is None


def test_a_plan_change_drops_the_scheduled_price_change():
    from subscriptions.rules import PlanChangePolicy

    sub = _scheduled()
    sub.pull_events()
    bigger = plan(code="big-m", prices=("99.00 USD",))
    sub.change_plan(target=bigger, at=at("2025-02-12 00:00"), policy=PlanChangePolicy())
    assert names(sub) == ["PriceChangeCancelled", "PlanChanged"]
    assert sub.recorded_events[0].reason == "plan_changed"


def test_a_price_change_needs_a_live_subscription_a_renewal_date_and_no_other_change():
    sub = _scheduled()
    with pytest.raises(InvalidTransition):  # one change at a time
        _schedule(sub, "00000000-0000-0000-0000-000000000001")
    other = subscription(on=plan(code="x-m"), status="active")
    from sharedkernel.errors import InvalidInput

    with pytest.raises(InvalidInput):  # not a renewal
        _schedule(other, "00000000-0000-0000-0000-000000000002", effective_at="2025-03-15 00:00")
    with pytest.raises(InvalidTransition):  # already on the version
        _schedule(other, "00000000-0000-0000-0000-000000000003", to_version=1, effective_at="2025-02-28 10:00")
