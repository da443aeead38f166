"""Translations of other contexts' payloads that the impact replay reads (analytics.impact).

Analytics never imports subscriptions or billing: these read the published payloads
(shared/API.md and the published language in docs/events.md). ``version`` fields are
absent from events stored before plan versions were published: they mean version 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sharedkernel.values import Money


@dataclass(frozen=True)
class PlanTerms:
    plan_id: str
    version: int
    interval: str
    prices: dict[str, Money]  #: currency → price per period
    included_usage: dict[str, int]
    overage_rates: dict[str, dict[str, Decimal]]  #: metric → currency → rate per unit
    name: str = ""


def plan_terms(payload: dict) -> PlanTerms:
    """subscriptions.PlanCreated / PlanUpdated → the terms of one plan version."""
    rates: dict[str, dict[str, Decimal]] = {}
    for metric, moneys in (payload.get("overage_rates") or {}).items():
        moneys = moneys if isinstance(moneys, list) else [moneys]
        rates[metric] = {m["currency"]: Decimal(m["amount"]) for m in moneys}
    return PlanTerms(
        plan_id=payload["plan_id"],
        version=int(payload.get("version") or 1),
        interval=payload["interval"],
        prices={p["currency"]: Money.from_json(p) for p in payload.get("prices") or []},
        included_usage={k: int(v) for k, v in (payload.get("included_usage") or {}).items()},
        overage_rates=rates,
        name=payload.get("name") or "",
    )


@dataclass(frozen=True)
class MigrationTerms:
    migration_id: str
    plan_id: str
    to_version: int
    from_versions: list[int] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    subscription_ids: list[str] = field(default_factory=list)
    created_before: datetime | None = None


def migration_terms(payload: dict) -> MigrationTerms:
    """subscriptions.PriceMigrationDrafted → which subscriptions move to which version."""
    before = payload.get("created_before")
    return MigrationTerms(
        migration_id=payload["migration_id"],
        plan_id=payload["plan_id"],
        to_version=int(payload["to_version"]),
        from_versions=[int(v) for v in payload.get("from_versions") or []],
        currencies=list(payload.get("currencies") or []),
        subscription_ids=[str(s) for s in payload.get("subscription_ids") or []],
        created_before=datetime.fromisoformat(before) if before else None,
    )


def plan_ref(payload: dict) -> tuple[str, int, str]:
    """A subscription event's PlanRef → (plan id, version, interval)."""
    plan = payload["plan"]
    return plan["id"], int(plan.get("version") or 1), plan["interval"]


def subscription_price(payload: dict) -> Money | None:
    """The price per period a subscription event states (PlanChanged/PriceChanged: the new one)."""
    price = payload.get("new_price") or payload.get("price")
    return Money.from_json(price) if price else None


@dataclass(frozen=True)
class InvoiceLine:
    kind: str
    amount: Money
    metric: str | None


def invoice_lines(payload: dict) -> list[InvoiceLine]:
    """billing.InvoiceFinalized → its lines (tax is not a line here: revenue is before tax)."""
    return [
        InvoiceLine(line["kind"], Money.from_json(line["amount"]), line.get("metric"))
        for line in payload["lines"]
        if line["kind"] != "tax"
    ]


def invoice_tax(payload: dict) -> Money:
    """billing.InvoiceFinalized → its tax (the tax lines; exempt or untaxed invoices have none)."""
    total = Money.zero(payload["currency"])
    for line in payload["lines"]:
        if line["kind"] == "tax":
            total = total + Money.from_json(line["amount"])
    return total


def usage_used(payload: dict) -> dict[str, int]:
    """subscriptions.UsageCalculated → metric → quantity used in the closed period."""
    return {m["metric"]: int(m["used"]) for m in payload["metrics"]}
