"""Analytics' own words for what upstream events state (``analytics.acl`` translates them).

StrEnums: a view stores the value, and a stored value compares equal to its member.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a subscription stands, as its events say."""

    TRIALING = "trialing"
    PENDING_PAYMENT = "pending_payment"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"


class Interval(StrEnum):
    """A plan's billing period."""

    MONTH = "month"
    YEAR = "year"


class RevenueKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
