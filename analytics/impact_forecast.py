"""The impact's forward look: the next 12 months at the history's own churn and upgrade rates.

Reads a finished :class:`analytics.impact.Sandbox`; nothing here reads events.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from sharedkernel.values import Money

if TYPE_CHECKING:
    from analytics.impact import Impact, Sandbox


def next_month(key: str) -> str:
    year, month = int(key[:4]), int(key[5:])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def month_row(key: str, currency: str, rev, mrr) -> dict:
    return {
        "month": key,
        "currency": currency,
        "actual_revenue": Money.from_minor(rev[0], currency),
        "proposed_revenue": Money.from_minor(rev[1], currency),
        "actual_mrr": Money.from_minor(mrr[0], currency),
        "proposed_mrr": Money.from_minor(mrr[1], currency),
    }


def forecast(sandbox: Sandbox, impact: Impact, currencies: list[str]) -> None:
    """Next 12 months at the history's own monthly churn and upgrade rates (no elasticity assumed)."""
    exposure = sum(sandbox.active_at_start.get(k, 0) for k in sandbox.keys[1:]) or 0
    churned = sum(sandbox.churned.get(k, 0) for k in sandbox.keys[1:])
    upgraded = sum(sandbox.upgraded.get(k, 0) for k in sandbox.keys[1:])
    churn = Decimal(churned) / exposure if exposure else Decimal(0)
    upgrade = Decimal(upgraded) / exposure if exposure else Decimal(0)
    impact.assumptions = {
        "method": "sandbox replay of stored events under the target version's terms, as if in force all along",
        "revenue": "invoice subtotals before tax; proration, credit and discount lines unchanged",
        "mrr": "active selected subscriptions at month end, before discounts",
        "monthly_churn_rate": str(churn.quantize(Decimal("0.0001"))),
        "monthly_upgrade_rate": str(upgrade.quantize(Decimal("0.0001"))),
        "basis": f"{churned} cancellation(s) and {upgraded} upgrade(s) over {exposure} subscription-months",
        "projection": "MRR shrinks by the churn rate; upgraded subscriptions leave the migration's terms; "
        "revenue = MRR (the history's overage is not projected); same churn under both terms",
        "subscriptions": sum(1 for s in sandbox.subs.values() if s.selected),
    }
    key = sandbox.keys[-1]
    for currency in currencies:
        a0, p0 = sandbox.mrr.get((key, currency), [0, 0])
        k = key
        for step in range(1, 13):
            k = next_month(k)
            keep = (1 - churn) ** step
            actual = (a0 * keep).quantize(Decimal(1), rounding=ROUND_HALF_UP)  # minor units, half-up
            proposed = actual + ((p0 - a0) * keep * (1 - upgrade) ** step).quantize(Decimal(1), ROUND_HALF_UP)
            impact.projection.append(month_row(k, currency, [int(actual), int(proposed)], [int(actual), int(proposed)]))
