"""Migration 0004 turns overage rates kept in minor units into the same exact unit rates."""

from __future__ import annotations

import importlib
from decimal import Decimal

migration = importlib.import_module("subscriptions.migrations.0004_rates_overage_rate_decimals")


def test_rates_in_minor_units_become_the_same_decimal_amount():
    assert migration.rate_from_minor(1, "USD") == Decimal("0.01")
    assert migration.rate_from_minor(150, "USD") == Decimal("1.50")
    assert migration.rate_from_minor(3, "JPY") == Decimal("3")
    assert migration.rate_from_minor(1250, "KWD") == Decimal("1.250")


def test_going_back_rounds_a_finer_rate_half_up_to_the_minor_unit():
    assert migration.minor_from_rate(Decimal("0.010000"), "USD") == 1
    assert migration.minor_from_rate(Decimal("0.004999"), "USD") == 0
    assert migration.minor_from_rate(Decimal("0.005"), "USD") == 1
    assert migration.minor_from_rate(Decimal("0.5"), "JPY") == 1
