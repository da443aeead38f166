"""Translation of other contexts' payloads into what Subscriptions needs.

Billing publishes these events (see billing/events.py); we read only the
fields named here, so Billing may add fields freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True)
class AboutSubscription:
    """A Billing event about a customer's subscription (``subscription_id`` None: about none of them)."""

    subscription_id: str | None
    customer_id: str

    @classmethod
    def from_payload(cls, payload: dict) -> Self:
        return cls(subscription_id=payload.get("subscription_id"), customer_id=payload["customer_id"])


@dataclass(frozen=True)
class InvoiceSettled(AboutSubscription):
    """billing.PaymentSucceeded: an invoice of a subscription was paid."""


@dataclass(frozen=True)
class CollectionGaveUp(AboutSubscription):
    """billing.DunningExhausted: every retry and reminder failed."""


@dataclass(frozen=True)
class CollectionInDunning:
    """billing.DunningStarted: the retries are used up; Billing's reminders begin."""

    subscription_id: str | None

    @classmethod
    def from_payload(cls, payload: dict) -> CollectionInDunning:
        return cls(subscription_id=payload.get("subscription_id"))


@dataclass(frozen=True)
class PaymentMethodNotice:
    """billing.PaymentMethodUpdated: whether the customer can be charged now."""

    customer_id: str
    present: bool

    @classmethod
    def from_payload(cls, payload: dict) -> PaymentMethodNotice:
        return cls(customer_id=payload["customer_id"], present=bool(payload.get("has_payment_method")))
