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


@pytest.mark.parametrize(
    ("period", "old", "new", "changed_on", "lines", "net"),
    [
        # a month-end period from Jan 31 counts the seconds of that period:
        # Jan 31 → Feb 28 (2025) is 28 days; a change 7 days in leaves 21/28 = 3/4
        ("2025-01-31/2025-02-28", "40.00 USD", "80.00 USD", "2025-02-07", ["-30.00 USD", "60.00 USD"], "30.00 USD"),
        # a leap February has 29 days: 2 of 29 left
        ("2024-02-01/2024-03-01", "29.00 USD", "58.00 USD", "2024-02-28", ["-2.00 USD", "4.00 USD"], "2.00 USD"),
        # each line rounds half-up to the cent: 10 of 30 days left, 10.00/3 = 3.333… → 3.33; 20.05/3 = 6.6833… → 6.68
        ("2025-04-01/2025-05-01", "10.00 USD", "20.05 USD", "2025-04-21", ["-3.33 USD", "6.68 USD"], "3.35 USD"),
        # exactly half a cent rounds up (away from zero): 0.05 × 1/2 = 0.025 → 0.03
        ("2025-04-01/2025-04-03", "0.05 USD", "0.05 USD", "2025-04-02", ["-0.03 USD", "0.03 USD"], "0.00 USD"),
        # JPY has no minor unit: 1/3 left
        ("2025-04-01/2025-05-01", "1000 JPY", "5000 JPY", "2025-04-21", ["-333 JPY", "1667 JPY"], "1334 JPY"),
        # KWD has three decimals
        ("2025-04-01/2025-05-01", "10.000 KWD", "25.000 KWD", "2025-04-21", ["-3.333 KWD", "8.333 KWD"], "5.000 KWD"),
    ],
)
def test_each_line_is_its_price_for_the_seconds_left_rounded_half_up_in_its_currency(
    period, old, new, changed_on, lines, net
):
    start, end = period.split("/")  # an ISO 8601 interval: start/end, midnight UTC
    p = change(old, new, InvoicePeriod(at(start), at(end)), at(changed_on))
    assert amounts(p) == (lines, net)


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
