"""The only reader of other contexts' payloads in Analytics: typed facts for the projections
(analytics.policies) and the impact replay (analytics.impact).

Analytics never imports subscriptions or billing: these read the published payloads
(shared/API.md and the published language in docs/events.md). ``version`` fields are
absent from events stored before plan versions were published: they mean version 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from analytics.vocabulary import Interval, RevenueKind, Status
from sharedkernel.events import DomainEvent
from sharedkernel.values import Money


@dataclass(frozen=True)
class PlanTerms:
    plan_id: str
    version: int
    interval: Interval
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
        interval=Interval(payload["interval"]),
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


def usage_subscription(payload: dict) -> str | None:
    """subscriptions.UsageCalculated → whose usage it is."""
    return payload.get("subscription_id")


def usage_used(payload: dict) -> dict[str, int]:
    """subscriptions.UsageCalculated → metric → quantity used in the closed period."""
    return {m["metric"]: int(m["used"]) for m in payload["metrics"]}


def migration_id(payload: dict) -> str:
    """subscriptions.PriceMigrationDrafted → which migration it drafts."""
    return payload["migration_id"]


@dataclass(frozen=True)
class Invoice:
    subscription_id: str | None
    currency: str
    lines: list[InvoiceLine]  #: before tax
    tax: Money


def invoice(payload: dict) -> Invoice:
    """billing.InvoiceFinalized → what the impact replay re-bills."""
    return Invoice(
        subscription_id=payload.get("subscription_id"),
        currency=payload["currency"],
        lines=invoice_lines(payload),
        tax=invoice_tax(payload),
    )


# -- the subscription view's facts (analytics.policies.project_subscriptions) ------------------


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    tier: str
    version: int
    interval: Interval


def _plan(plan: dict) -> Plan:
    return Plan(plan["id"], plan["name"], plan["tier"], int(plan.get("version") or 1), Interval(plan["interval"]))


@dataclass(frozen=True)
class SubscriptionChanged:
    """Any subscriptions event about one subscription: where it stands after it, and what happened."""

    subscription_id: str
    customer_id: str
    plan: Plan
    price: Money | None  #: the price per period it states (a plan or price change: the new one)
    status: Status
    created: bool = False
    cancelled: bool = False
    renewed: bool = False
    resumed: bool = False
    upgrade: bool = False  #: a plan change its subscription calls an upgrade
    old_price: Money | None = None  #: a plan change: the price and interval it left
    old_interval: Interval | None = None
    price_migrated: bool = False  #: a price migration moved it (PriceChanged)


@dataclass(frozen=True)
class DiscountApplied:
    subscription_id: str | None
    percent_off: Decimal | None
    amount_off: Money | None
    periods: int | None  #: periods it applies for; None: forever


@dataclass(frozen=True)
class PaymentFailed:
    subscription_id: str | None


@dataclass(frozen=True)
class PaymentSucceeded:
    subscription_id: str | None


@dataclass(frozen=True)
class DunningLevel:
    subscription_id: str | None
    level: int | None  #: None: one more than before


@dataclass(frozen=True)
class UsageRecorded:
    quantities: dict[str, int]  #: subscription id → quantity recorded in this event


_FLAGS = {
    "SubscriptionCreated": "created",
    "SubscriptionCancelled": "cancelled",
    "SubscriptionRenewed": "renewed",
    "SubscriptionResumed": "resumed",
    "PriceChanged": "price_migrated",
}


def subscription_changed(event: DomainEvent) -> SubscriptionChanged:
    p = event.payload
    flags = {_FLAGS[event.name]: True} if event.name in _FLAGS else {}
    if event.name == "PlanChanged":
        flags["upgrade"] = p.get("direction") == "upgrade"
        if p.get("old_price") and p.get("old_plan"):  # always published; the impact replay's fixtures omit them
            flags["old_price"] = Money.from_json(p["old_price"])
            flags["old_interval"] = Interval(p["old_plan"]["interval"])
    return SubscriptionChanged(
        subscription_id=p["subscription_id"],
        customer_id=p["customer_id"],
        plan=_plan(p["plan"]),
        price=subscription_price(p),
        status=Status(p["status"]),
        **flags,
    )


_DURATIONS = {"once": 1, "forever": None}


def coupon_redeemed(event: DomainEvent) -> DiscountApplied:
    p = event.payload
    return DiscountApplied(
        subscription_id=p.get("subscription_id"),
        percent_off=Decimal(p["percent_off"]) if p.get("percent_off") is not None else None,
        amount_off=Money.from_json(p["amount_off"]) if p.get("amount_off") else None,
        periods=_DURATIONS.get(p["duration"], p.get("duration_in_periods")),
    )


def usage_recorded(event: DomainEvent) -> UsageRecorded:
    quantities: dict[str, int] = {}
    for total in event.payload["totals"]:
        quantities[total["subscription_id"]] = quantities.get(total["subscription_id"], 0) + int(total["quantity"])
    return UsageRecorded(quantities)


def _dunning(event: DomainEvent) -> DunningLevel:
    return DunningLevel(event.payload.get("subscription_id"), int(event.payload.get("level") or 0) or None)


#: The Subscription events that carry the subscription as it now is, read by :func:`subscription_changed`.
SUBSCRIPTION_CHANGES = (
    "subscriptions.SubscriptionCreated",
    "subscriptions.SubscriptionActivated",
    "subscriptions.SubscriptionSuspended",
    "subscriptions.SubscriptionResumed",
    "subscriptions.SubscriptionRenewed",
    "subscriptions.SubscriptionCancelled",
    "subscriptions.PlanChanged",
    "subscriptions.PriceChanged",
    "subscriptions.TrialExpired",
)

SUBSCRIPTION_FACTS = {
    **dict.fromkeys(SUBSCRIPTION_CHANGES, subscription_changed),
    "billing.CouponRedeemed": coupon_redeemed,
    "billing.PaymentFailed": lambda event: PaymentFailed(event.payload.get("subscription_id")),
    "billing.PaymentSucceeded": lambda event: PaymentSucceeded(event.payload.get("subscription_id")),
    "billing.DunningEscalated": _dunning,
    "billing.DunningExhausted": _dunning,
    "subscriptions.UsageRecorded": usage_recorded,
}


def subscription_fact(event: DomainEvent):
    """The fact a subscription view learns from one of :data:`SUBSCRIPTION_FACTS`' events."""
    return SUBSCRIPTION_FACTS[event.event_type](event)


# -- revenue and names -------------------------------------------------------------------------


@dataclass(frozen=True)
class MoneyMoved:
    kind: RevenueKind
    amount: Money  #: as the event states it (positive for a refund too)
    on: datetime
    plan_name: str


def _money_moved(kind: RevenueKind, payload: dict, at: str) -> MoneyMoved:
    return MoneyMoved(
        kind, Money.from_json(payload["amount"]), datetime.fromisoformat(payload[at]), payload.get("plan_name") or ""
    )


def payment_received(payload: dict) -> MoneyMoved:
    """billing.PaymentSucceeded → money in."""
    return _money_moved(RevenueKind.PAYMENT, payload, "paid_at")


def refund_issued(payload: dict) -> MoneyMoved:
    """billing.RefundIssued → money out."""
    return _money_moved(RevenueKind.REFUND, payload, "refunded_at")


@dataclass(frozen=True)
class CustomerRegistered:
    customer_id: str
    name: str
    email: str


def customer_registered(payload: dict) -> CustomerRegistered:
    return CustomerRegistered(payload["customer_id"], payload["name"], str(payload.get("email") or ""))
