"""Proration — the one implementation (DESIGN.md): by seconds, each line rounded half-up."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from billing.proration import prorate
from billing.values import InvoicePeriod
from sharedkernel.values import CurrencyMismatch, Money
from tests.conftest import at


def change(old, new, period, at_, new_period=None):
    return prorate(
        old_plan="Old",
        old_price=Money(*old.split()),
        new_plan="New",
        new_price=Money(*new.split()),
        period=period,
        new_period=new_period or period,
        at=at_,
    )


def _s(m: Money) -> str:
    return f"{m.amount} {m.currency}"


def amounts(p):
    return [_s(line.amount) for line in p.lines], _s(p.net)


def test_upgrade_halfway_through_a_30_day_month_charges_half_the_difference():
    april = InvoicePeriod(at("2025-04-01 00:00"), at("2025-05-01 00:00"))
    p = change("10.00 USD", "30.00 USD", april, at("2025-04-16 00:00"))
    assert amounts(p) == (["-5.00 USD", "15.00 USD"], "10.00 USD")
    assert p.charges_now and not p.credits


def test_downgrade_gives_credit_for_the_unused_difference():
    april = InvoicePeriod(at("2025-04-01 00:00"), at("2025-05-01 00:00"))
    p = change("30.00 USD", "10.00 USD", april, at("2025-04-16 00:00"))
    assert amounts(p) == (["-15.00 USD", "5.00 USD"], "-10.00 USD")
    assert p.credits and not p.charges_now


def test_month_end_period_from_jan_31_counts_the_seconds_of_that_period():
    # Jan 31 → Feb 28 (2025) is 28 days; a change 7 days in leaves 21/28 = 3/4.
    period = InvoicePeriod(at("2025-01-31 00:00"), at("2025-02-28 00:00"))
    p = change("40.00 USD", "80.00 USD", period, at("2025-02-07 00:00"))
    assert amounts(p) == (["-30.00 USD", "60.00 USD"], "30.00 USD")


def test_leap_february_has_29_days():
    period = InvoicePeriod(at("2024-02-01 00:00"), at("2024-03-01 00:00"))
    p = change("29.00 USD", "58.00 USD", period, at("2024-02-28 00:00"))  # 2 of 29 days left
    assert amounts(p) == (["-2.00 USD", "4.00 USD"], "2.00 USD")


def test_dst_day_is_counted_in_real_seconds():
    # New York springs forward on 2025-03-09: that local day has 23 hours.
    ny = ZoneInfo("America/New_York")
    start = datetime(2025, 3, 9, 0, 0, tzinfo=ny).astimezone(UTC)
    end = datetime(2025, 3, 10, 0, 0, tzinfo=ny).astimezone(UTC)
    period = InvoicePeriod(start, end)
    assert (end - start).total_seconds() == 23 * 3600
    noon = datetime(2025, 3, 9, 12, 0, tzinfo=ny).astimezone(UTC)  # 12 real hours left of 23
    p = change("23.00 USD", "46.00 USD", period, noon)
    assert amounts(p) == (["-12.00 USD", "24.00 USD"], "12.00 USD")


def test_each_line_rounds_half_up_to_the_cent():
    period = InvoicePeriod(at("2025-04-01 00:00"), at("2025-05-01 00:00"))
    # 10 of 30 days left: 10.00/3 = 3.333… → 3.33; 20.05/3 = 6.6833… → 6.68
    p = change("10.00 USD", "20.05 USD", period, at("2025-04-21 00:00"))
    assert amounts(p) == (["-3.33 USD", "6.68 USD"], "3.35 USD")
    # exactly half a cent rounds up (away from zero): 0.05 × 1/2 = 0.025 → 0.03
    p = change(
        "0.05 USD", "0.05 USD", InvoicePeriod(at("2025-04-01 00:00"), at("2025-04-03 00:00")), at("2025-04-02 00:00")
    )
    assert amounts(p) == (["-0.03 USD", "0.03 USD"], "0.00 USD")


def test_jpy_has_no_minor_unit():
    period = InvoicePeriod(at("2025-04-01 00:00"), at("2025-05-01 00:00"))
    p = change("1000 JPY", "5000 JPY", period, at("2025-04-21 00:00"))  # 1/3 left
    assert amounts(p) == (["-333 JPY", "1667 JPY"], "1334 JPY")


def test_kwd_has_three_decimals():
    period = InvoicePeriod(at("2025-04-01 00:00"), at("2025-05-01 00:00"))
    p = change("10.000 KWD", "25.000 KWD", period, at("2025-04-21 00:00"))
    assert amounts(p) == (["-3.333 KWD", "8.333 KWD"], "5.000 KWD")


def test_monthly_to_annual_credits_the_unused_month_and_charges_a_full_year():
    april = InvoicePeriod(at("2025-04-01 00:00"), at("2025-05-01 00:00"))
    change_at = at("2025-04-16 00:00")
    year = InvoicePeriod(change_at, at("2026-04-16 00:00"))
    p = change("30.00 USD", "300.00 USD", april, change_at, new_period=year)
    assert amounts(p) == (["-15.00 USD", "300.00 USD"], "285.00 USD")


def test_annual_to_monthly_credits_the_unused_part_of_the_year():
    year = InvoicePeriod(at("2025-01-01 00:00"), at("2026-01-01 00:00"))  # 365 days
    change_at = at("2025-07-02 12:00")  # 182.5 days left = exactly half
    month = InvoicePeriod(change_at, at("2025-08-02 12:00"))
    p = change("365.00 USD", "30.00 USD", year, change_at, new_period=month)
    assert amounts(p) == (["-182.50 USD", "30.00 USD"], "-152.50 USD")


def test_refuses_mixed_currencies_and_times_outside_the_period():
    april = InvoicePeriod(at("2025-04-01 00:00"), at("2025-05-01 00:00"))
    with pytest.raises(CurrencyMismatch):
        change("10.00 USD", "10.00 EUR", april, at("2025-04-10 00:00"))
    with pytest.raises(ValueError, match="inside the current period"):
        change("10.00 USD", "20.00 USD", april, at("2025-05-01 00:00"))


def test_lines_say_what_they_are_for():
    april = InvoicePeriod(at("2025-04-01 00:00"), at("2025-05-01 00:00"))
    p = change("10.00 USD", "30.00 USD", april, at("2025-04-16 00:00"))
    assert p.lines[0].description.startswith("Unused time on Old")
    assert p.lines[1].description.startswith("Remaining time on New")
    assert Decimal(p.net.amount) == Decimal("10.00")
