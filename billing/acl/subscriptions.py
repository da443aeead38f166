"""What Billing reads from Subscriptions' published events (subscriptions/events.py payloads).

Only the fields named here are read, so Subscriptions may add fields freely.
Times and money are turned into our types on the way in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing.values import InvoicePeriod
from sharedkernel.values import Money, UnitRate


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _period(payload: dict | None) -> InvoicePeriod | None:
    if not payload:
        return None
    return InvoicePeriod(_time(payload["start"]), _time(payload["end"]))


@dataclass(frozen=True)
class CustomerFacts:
    customer_id: str
    name: str
    email: str
    currency: str
    country: str
    region: str
    tax_exempt: bool
    test_clock_id: str | None
    user_id: int | None

    @classmethod
    def from_payload(cls, p: dict) -> CustomerFacts:
        return cls(
            customer_id=p["customer_id"],
            name=p["name"],
            email=p["email"],
            currency=p["currency"],
            country=p["country"],
            region=p.get("region") or "",
            tax_exempt=bool(p.get("tax_exempt")),
            test_clock_id=p.get("test_clock_id"),
            user_id=p.get("user_id"),
        )


@dataclass(frozen=True)
class PlanFacts:
    plan_id: str
    code: str
    name: str
    tier: str
    interval: str
    prices: dict[str, str]
    included_usage: dict[str, int]
    overage_rates: dict[str, dict[str, str]]

    @classmethod
    def from_payload(cls, p: dict) -> PlanFacts:
        return cls(
            plan_id=p["plan_id"],
            code=p["code"],
            name=p["name"],
            tier=p.get("tier", ""),
            interval=p["interval"],
            prices={m["currency"]: m["amount"] for m in p.get("prices", [])},
            included_usage=dict(p.get("included_usage") or {}),
            overage_rates={
                metric: {m["currency"]: m["amount"] for m in rates}
                for metric, rates in (p.get("overage_rates") or {}).items()
            },
        )


@dataclass(frozen=True)
class SubscriptionFacts:
    """Any subscriptions.Subscription* / PlanChanged / Trial* event, read for Billing."""

    event_type: str
    subscription_id: str
    customer_id: str
    plan_id: str
    plan_code: str
    plan_name: str
    interval: str
    status: str
    price: Money | None
    #: The plan version it is billed on (1 in events stored before versions were published).
    plan_version: int
    period: InvoicePeriod | None
    #: The billing anchor the period's grid is counted from (None in events stored before it was published).
    anchor: datetime | None
    raw: dict

    @classmethod
    def from_payload(cls, event_type: str, p: dict) -> SubscriptionFacts:
        plan = p["plan"]
        # a scheduled price change is not yet the price (PriceChanged is, with its new_price)
        price = (
            p.get("old_price") if event_type.endswith("PriceChangeScheduled") else p.get("price") or p.get("new_price")
        )
        period = p.get("new_period") or p.get("period")
        return cls(
            event_type=event_type,
            subscription_id=p["subscription_id"],
            customer_id=p["customer_id"],
            plan_id=plan["id"],
            plan_code=plan["code"],
            plan_name=plan["name"],
            interval=plan["interval"],
            status=p["status"],
            price=Money.from_json(price) if price else None,
            plan_version=int(plan.get("version") or 1),
            period=_period(period),
            anchor=_time((period or {}).get("anchor")),
            raw=p,
        )


@dataclass(frozen=True)
class PlanChangeFacts:
    subscription_id: str
    customer_id: str
    old_plan_name: str
    new_plan_name: str
    old_price: Money
    new_price: Money
    changed_at: datetime
    period: InvoicePeriod
    new_period: InvoicePeriod
    in_trial: bool

    @classmethod
    def from_payload(cls, p: dict) -> PlanChangeFacts:
        return cls(
            subscription_id=p["subscription_id"],
            customer_id=p["customer_id"],
            old_plan_name=p["old_plan"]["name"],
            new_plan_name=p["plan"]["name"],
            old_price=Money.from_json(p["old_price"]),
            new_price=Money.from_json(p["new_price"]),
            changed_at=_time(p["changed_at"]),
            period=_period(p["period"]),
            new_period=_period(p["new_period"]),
            in_trial=bool(p.get("in_trial")),
        )


@dataclass(frozen=True)
class MetricFacts:
    metric: str
    used: int
    included: int
    overage: int
    #: Up to 6 decimals; events stored before rates were finer carry the same JSON at minor digits.
    rate: UnitRate | None


@dataclass(frozen=True)
class UsageFacts:
    """subscriptions.UsageCalculated: a period's usage is final."""

    subscription_id: str
    customer_id: str
    plan_name: str
    currency: str
    period: InvoicePeriod
    metrics: tuple[MetricFacts, ...]
    final: bool

    @classmethod
    def from_payload(cls, p: dict) -> UsageFacts:
        return cls(
            subscription_id=p["subscription_id"],
            customer_id=p["customer_id"],
            plan_name=p["plan_name"],
            currency=p["currency"],
            period=_period(p["period"]),
            metrics=tuple(
                MetricFacts(
                    metric=m["metric"],
                    used=int(m["used"]),
                    included=int(m["included"]),
                    overage=int(m["overage"]),
                    rate=UnitRate.from_json(m["rate"]) if m.get("rate") else None,
                )
                for m in p["metrics"]
            ),
            final=bool(p.get("final")),
        )
