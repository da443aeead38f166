"""What Billing reads from Subscriptions' published events (subscriptions/events.py payloads).

The only place in Billing that reads another context's payload: policies get typed facts with
flags Billing owns (``awaits_first_payment``, ``trial_converted``, ...) and never index a payload
or compare Subscriptions' strings. Only the fields named here are read, so Subscriptions may add
fields freely. Times and money are turned into our types on the way in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from billing.values import AccountHolder, InvoicePeriod, SubscriptionState
from sharedkernel.values import Money, UnitRate


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _as_published(p: dict, *names: str) -> dict:
    """The payload's fields ``names``, taken as they are (each required)."""
    return {name: p[name] for name in names}


def _period(payload: dict | None) -> InvoicePeriod | None:
    if not payload:
        return None
    return InvoicePeriod(_time(payload["start"]), _time(payload["end"]))


def account_holder(p: dict) -> AccountHolder:
    """subscriptions.CustomerRegistered: who Billing opens an account for."""
    return AccountHolder(
        **_as_published(p, "customer_id", "name", "email", "currency", "country"),
        region=p.get("region") or "",
        tax_exempt=bool(p.get("tax_exempt")),
        test_clock_id=p.get("test_clock_id"),
        user_id=p.get("user_id"),
    )


@dataclass(frozen=True)
class PlanAvailability:
    """subscriptions.PlanArchived / PlanRestored: whether the plan is still offered."""

    plan_id: str
    archived: bool

    @classmethod
    def from_payload(cls, event_type: str, p: dict) -> PlanAvailability:
        return cls(plan_id=p["plan_id"], archived=event_type == "subscriptions.PlanArchived")


def plan_facts(event_type: str, p: dict) -> PlanFacts | PlanAvailability:
    """A plan event read for Billing's copy of the plan: its terms, or only its availability."""
    if event_type in ("subscriptions.PlanArchived", "subscriptions.PlanRestored"):
        return PlanAvailability.from_payload(event_type, p)
    return PlanFacts.from_payload(p)


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
            **_as_published(p, "plan_id", "code", "name", "interval"),
            tier=p.get("tier", ""),
            prices={m["currency"]: m["amount"] for m in p.get("prices", [])},
            included_usage=dict(p.get("included_usage") or {}),
            overage_rates={
                metric: {m["currency"]: m["amount"] for m in rates}
                for metric, rates in (p.get("overage_rates") or {}).items()
            },
        )


@dataclass(frozen=True)
class ComingPrice:
    """subscriptions.PriceChangeScheduled: the price the subscription moves to at a renewal."""

    price: Money
    version: int
    effective_at: datetime


class PriceNews(Enum):
    """What a subscription event says about a scheduled price change (Billing's own words)."""

    NONE = "none"
    SCHEDULED = "scheduled"
    #: It happened (PriceChanged) or will not (PriceChangeCancelled): nothing is coming any more.
    SETTLED = "settled"


_PRICE_NEWS = {
    "subscriptions.PriceChangeScheduled": PriceNews.SCHEDULED,
    "subscriptions.PriceChangeCancelled": PriceNews.SETTLED,
    "subscriptions.PriceChanged": PriceNews.SETTLED,
}


@dataclass(frozen=True)
class SubscriptionFacts:
    """Any subscriptions.Subscription* / PlanChanged / Trial* / Price* event, read for Billing."""

    event_type: str
    subscription_id: str
    customer_id: str
    plan_id: str
    plan_code: str
    plan_name: str
    interval: str
    #: Subscriptions' status word, kept as is on Billing's copy (BilledSubscription.status).
    status: str
    price: Money | None
    #: The plan version it is billed on (1 in events stored before versions were published).
    plan_version: int
    period: InvoicePeriod | None
    #: The billing anchor the period's grid is counted from (None in events stored before it was published).
    anchor: datetime | None
    #: Created with payment due now (no trial): its first invoice is due.
    awaits_first_payment: bool = False
    #: Activated because a trial converted: its first paid period is due.
    trial_converted: bool = False
    #: Resumed into a new period that has not been billed.
    period_restarted: bool = False
    #: Cancelled while its first payment was still due.
    cancelled_before_first_payment: bool = False
    price_news: PriceNews = PriceNews.NONE
    #: With ``price_news`` SCHEDULED: what is coming.
    coming_price: ComingPrice | None = None

    @classmethod
    def from_payload(cls, event_type: str, p: dict) -> SubscriptionFacts:
        plan = p["plan"]
        news = _PRICE_NEWS.get(event_type, PriceNews.NONE)
        # a scheduled price change is not yet the price (PriceChanged is, with its new_price)
        price = p.get("old_price") if news == PriceNews.SCHEDULED else p.get("price") or p.get("new_price")
        period = p.get("new_period") or p.get("period")
        name = event_type.rsplit(".", 1)[-1]
        return cls(
            event_type=event_type,
            **_as_published(p, "subscription_id", "customer_id", "status"),
            plan_id=plan["id"],
            plan_code=plan["code"],
            plan_name=plan["name"],
            interval=plan["interval"],
            price=Money.from_json(price) if price else None,
            plan_version=int(plan.get("version") or 1),
            period=_period(period),
            anchor=_time((period or {}).get("anchor")),
            awaits_first_payment=name == "SubscriptionCreated" and p["status"] == SubscriptionState.PENDING_PAYMENT,
            trial_converted=name == "SubscriptionActivated" and p.get("reason") == "trial_converted",
            period_restarted=name == "SubscriptionResumed" and bool(p.get("period_restarted")),
            cancelled_before_first_payment=name == "SubscriptionCancelled"
            and p.get("previous_status") == SubscriptionState.PENDING_PAYMENT,
            price_news=news,
            coming_price=ComingPrice(Money.from_json(p["new_price"]), int(p["to_version"]), _time(p["effective_at"]))
            if news == PriceNews.SCHEDULED
            else None,
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
            **_as_published(p, "subscription_id", "customer_id"),
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
            **_as_published(p, "subscription_id", "customer_id", "plan_name", "currency"),
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
