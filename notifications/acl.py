"""The only reader of other contexts' payloads in Notifications: one typed fact per upstream event.

Notifications never imports subscriptions or billing: these read the published payloads
(shared/API.md and the published language in docs/events.md). Policies, mail and webhooks take
the facts; only the webhook fan-out forwards an event as it is (the webhook body is the event), and
asks :func:`webhook_owner` whose event it is.

Money is carried as the text the mail shows (``"12.00 USD"``, the payload's own amount and currency).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

#: A subscription's status while it is in its trial (subscriptions' published status value).
TRIALING = "trialing"


def money_text(m: dict | None) -> str:
    return f"{m['amount']} {m['currency']}" if m else ""


def _day(iso: str) -> str:
    return iso[:10]


# -- subscriptions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerRegistered:
    customer_id: str
    name: str
    email: str
    user_id: int | None
    test_clock_id: str | None


def customer_registered(payload: dict) -> CustomerRegistered:
    """subscriptions.CustomerRegistered → who we write to."""
    return CustomerRegistered(
        customer_id=payload["customer_id"],
        name=payload["name"],
        email=payload["email"],
        user_id=payload.get("user_id"),
        test_clock_id=payload.get("test_clock_id"),
    )


@dataclass(frozen=True)
class CustomersPlan:
    customer_id: str
    plan_name: str


def customers_plan(payload: dict) -> CustomersPlan:
    """SubscriptionCreated / PlanChanged / SubscriptionActivated → the plan the customer is on now."""
    return CustomersPlan(customer_id=payload["customer_id"], plan_name=payload["plan"]["name"])


@dataclass(frozen=True)
class TrialStarted:
    subscription_id: str
    customer_id: str
    trial_end: datetime
    plan_name: str


def trial_started(payload: dict) -> TrialStarted:
    return TrialStarted(
        subscription_id=payload["subscription_id"],
        customer_id=payload["customer_id"],
        trial_end=datetime.fromisoformat(payload["trial_end"]),
        plan_name=payload["plan"]["name"],
    )


@dataclass(frozen=True)
class TrialLeft:
    """A subscription whose trial is over for good (cancelled or expired) — or, after a plan change,
    perhaps not (``still_trialing``)."""

    subscription_id: str
    still_trialing: bool = False


def trial_left(payload: dict) -> TrialLeft:
    """SubscriptionCancelled / TrialExpired: no trial any more."""
    return TrialLeft(subscription_id=payload["subscription_id"])


def plan_changed(payload: dict) -> TrialLeft:
    """PlanChanged: the trial goes on if the subscription is still trialing on the new plan."""
    return TrialLeft(subscription_id=payload["subscription_id"], still_trialing=payload.get("status") == TRIALING)


@dataclass(frozen=True)
class Letter:
    """A subscription event's e-mail to its customer (the template's context); the address is our Recipient."""

    customer_id: str
    context: dict


def subscription_cancelled(payload: dict) -> Letter:
    return Letter(
        payload["customer_id"],
        {
            "plan_name": payload["plan"]["name"],
            "reason": payload.get("reason", ""),
            "at_period_end": payload.get("at_period_end"),
            "cancelled_at": _day(payload["cancelled_at"]),
        },
    )


def trial_expired(payload: dict) -> Letter:
    return Letter(payload["customer_id"], {"plan_name": payload["plan"]["name"], "converted": payload.get("converted")})


@dataclass(frozen=True)
class PriceChangeScheduled:
    subscription_id: str
    customer_id: str
    plan_name: str
    old_price: str
    new_price: str
    effective_on: str  #: YYYY-MM-DD
    rise: bool


def price_change_scheduled(payload: dict) -> PriceChangeScheduled:
    old, new = payload["old_price"], payload["new_price"]
    return PriceChangeScheduled(
        subscription_id=payload["subscription_id"],
        customer_id=payload["customer_id"],
        plan_name=payload["plan"]["name"],
        old_price=money_text(old),
        new_price=money_text(new),
        effective_on=_day(payload["effective_at"]),
        rise=Decimal(new["amount"]) > Decimal(old["amount"]),
    )


# -- billing: its payloads carry the customer's name and address -------------------------------


@dataclass(frozen=True)
class BillingMail:
    """A billing event's addressee and what its e-mail says (the template's context)."""

    customer_id: str
    email: str
    name: str
    context: dict


def _billing_mail(payload: dict, context: dict) -> BillingMail:
    return BillingMail(
        customer_id=payload["customer_id"],
        email=payload["customer_email"],
        name=payload["customer_name"],
        context=context,
    )


def invoice_finalized(payload: dict) -> BillingMail:
    return _billing_mail(
        payload,
        {
            "number": payload["number"],
            "amount_due": money_text(payload["amount_due"]),
            "total": money_text(payload["total"]),
            "url": payload["url"],
            "plan_name": payload.get("plan_name") or "",
            "lines": [
                {"description": line["description"], "amount": money_text(line["amount"])} for line in payload["lines"]
            ],
        },
    )


def payment_succeeded(payload: dict) -> BillingMail:
    return _billing_mail(
        payload,
        {
            "invoice_number": payload["invoice_number"],
            "amount": money_text(payload["amount"]),
            "paid_at": _day(payload["paid_at"]),
            "plan_name": payload.get("plan_name") or "",
        },
    )


def payment_failed(payload: dict) -> BillingMail:
    return _billing_mail(
        payload,
        {
            "invoice_number": payload["invoice_number"],
            "amount": money_text(payload["amount"]),
            "reason": payload["failure_message"],
            "next_retry_at": (payload.get("next_retry_at") or "")[:16].replace("T", " "),
            "update_url": payload["update_payment_method_url"],
        },
    )


URGENCY = {1: "Reminder", 2: "Second notice", 3: "Final notice"}


def dunning_escalated(payload: dict) -> BillingMail:
    """The reminder grows more urgent with each level; the last one says so."""
    level = int(payload["level"])
    final = bool(payload.get("final"))
    return _billing_mail(
        payload,
        {
            "invoice_number": payload["invoice_number"],
            "amount": money_text(payload["amount"]),
            "level": level,
            "final": final,
            "urgency": "Final notice" if final else URGENCY.get(level, "Urgent"),
            "update_url": payload["update_payment_method_url"],
            "plan_name": payload.get("plan_name") or "",
        },
    )


# -- webhooks ----------------------------------------------------------------------------------


def webhook_owner(payload: dict) -> str | None:
    """The customer a public event belongs to (their endpoints receive it), or None."""
    return payload.get("customer_id")
