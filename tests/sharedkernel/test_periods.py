"""The one billing-period rule: counted from the anchor, never from the previous end."""

from __future__ import annotations

import pytest

from sharedkernel.periods import nth_period, period_after
from tests.conftest import at

JAN31 = at("2025-01-31 10:00")


def test_a_month_end_anchor_keeps_to_the_month_end():
    assert [nth_period(JAN31, "month", n)[1] for n in range(4)] == [
        at("2025-02-28 10:00"),
        at("2025-03-31 10:00"),
        at("2025-04-30 10:00"),
        at("2025-05-31 10:00"),
    ]


def test_the_period_after_one_follows_the_anchor_not_the_end():
    assert period_after(JAN31, "month", at("2025-02-28 10:00")) == (at("2025-02-28 10:00"), at("2025-03-31 10:00"))
    assert period_after(JAN31, "month", at("2025-03-31 10:00")) == (at("2025-03-31 10:00"), at("2025-04-30 10:00"))


def test_after_a_trial_that_ends_at_the_anchor_comes_the_first_period():
    assert period_after(JAN31, "month", JAN31) == (JAN31, at("2025-02-28 10:00"))


def test_an_annual_plan_anchored_on_february_29_ends_on_the_28th_until_the_next_leap_year():
    leap = at("2024-02-29 09:00")
    assert period_after(leap, "year", at("2025-02-28 09:00")) == (at("2025-02-28 09:00"), at("2026-02-28 09:00"))
    assert period_after(leap, "year", at("2027-02-28 09:00")) == (at("2027-02-28 09:00"), at("2028-02-29 09:00"))


def test_an_end_off_the_anchors_grid_starts_a_grid_there():
    assert period_after(JAN31, "month", at("2025-03-15 00:00")) == (at("2025-03-15 00:00"), at("2025-04-15 00:00"))


def test_an_unknown_interval_is_refused():
    with pytest.raises(ValueError, match="Unknown billing interval"):
        nth_period(JAN31, "week", 0)
