"""The billing-period rule (anniversary billing), the one every context uses.

Periods are counted from a *billing anchor*: period *n* runs from
``anchor + n intervals`` to ``anchor + (n+1) intervals``, each counted from the
anchor — never from the previous end — so a Jan 31 anchor gives Feb 28 (29 in a
leap year), then Mar 31, Apr 30, …, and never drifts to the 28th. An annual
period anchored on Feb 29 ends Feb 28 in common years and Feb 29 in leap years.

Subscriptions moves its periods with :func:`nth_period` and publishes the anchor
in every period it puts in an event (``PeriodRef.anchor``); a consumer that needs
the period after a published one (Billing's upcoming invoice) asks
:func:`period_after` with that anchor, so both sides compute the same dates.
Plain Python: intervals are the published names ``"month"`` and ``"year"``.
"""

from __future__ import annotations

from datetime import datetime

from dateutil.relativedelta import relativedelta

INTERVAL_MONTHS = {"month": 1, "year": 12}


def months_in(interval: str) -> int:
    try:
        return INTERVAL_MONTHS[str(interval)]
    except KeyError:
        raise ValueError(f"Unknown billing interval {interval!r}; expected month or year.") from None


def _boundary(anchor: datetime, interval: str, count: int) -> datetime:
    return anchor + relativedelta(months=months_in(interval) * count)


def nth_period(anchor: datetime, interval: str, index: int) -> tuple[datetime, datetime]:
    """[start, end) of period ``index`` (0 first) counted from ``anchor``."""
    if index < 0:
        raise ValueError("Period index starts at 0.")
    return _boundary(anchor, interval, index), _boundary(anchor, interval, index + 1)


def period_after(anchor: datetime, interval: str, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the period that follows one ending at ``end`` on ``anchor``'s grid.

    ``end`` is a boundary of that grid (``anchor`` itself when the period before was a
    trial that ends where billing starts). A boundary off the grid — an anchor that was
    not known — starts a grid at ``end``.
    """
    local = end.astimezone(anchor.tzinfo) if anchor.tzinfo and end.tzinfo else end
    months = (local.year - anchor.year) * 12 + local.month - anchor.month
    boundaries = months // months_in(interval)
    if boundaries < 0 or _boundary(anchor, interval, boundaries) != end:
        return nth_period(end, interval, 0)
    return end, _boundary(anchor, interval, boundaries + 1)
