"""A price migration's decision for one subscription: moved, or the reason it is not."""

from __future__ import annotations

from sharedkernel.values import Money
from subscriptions.models import LeftOut, PriceChangeDecision
from tests.conftest import at


def test_a_decision_moves_only_with_a_renewal_to_come_and_says_why_not_otherwise():
    old, new = Money.parse("30.00", "USD"), Money.parse("40.00", "USD")
    moved = PriceChangeDecision(None, old, new, at("2025-03-01 00:00"))
    assert moved.moves and moved.monthly_change == Money.parse("10.00", "USD")
    no_renewal = PriceChangeDecision(None, old, new, None)
    assert not no_renewal.moves and no_renewal.reason == "no_renewal"
    left_out = PriceChangeDecision(LeftOut.DUNNING, old)
    assert not left_out.moves and left_out.reason == "dunning"
