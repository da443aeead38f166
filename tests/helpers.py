"""Helpers shared by integration and flow tests."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from sharedkernel.aggregates import RecordedEvent
from sharedkernel.events import DomainEvent
from sharedkernel.eventstore import append
from sharedkernel.models import StoredEvent


@dataclass(frozen=True)
class ForeignEvent:
    """An event of another context, as its publisher documents it (feeds policies in tests)."""

    event_type: str
    body: dict
    event_version: int = 1

    def payload(self) -> dict:
        return self.body


@dataclass(frozen=True)
class TaggedEvent:
    """A stand-in event for plumbing tests, told apart by its tag (not part of any published
    language); a test names its own kind by overriding ``event_type``."""

    tag: str
    event_type: str = "tests.Tagged"
    event_version: int = 1

    def payload(self) -> dict:
        return {"tag": self.tag}


def publish(
    event_type: str,
    payload: dict,
    *,
    aggregate_type: str = "Test",
    aggregate_id: str | None = None,
    occurred_on: datetime | None = None,
    test_clock_id: str | None = None,
) -> DomainEvent:
    with transaction.atomic():
        [event] = append(
            [
                RecordedEvent(
                    ForeignEvent(event_type, payload),
                    occurred_on or timezone.now(),
                    aggregate_type,
                    aggregate_id or str(uuid.uuid4()),
                    1,
                    test_clock_id,
                )
            ]
        )
    return event


def all_at_once(target, arguments, *, timeout: float | None = None) -> None:
    """``target(*args)`` for each ``args`` of ``arguments``, each in a thread of its own, all started
    before any is waited for (each waited for up to ``timeout``)."""
    threads = [threading.Thread(target=target, args=args) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)


#: A monthly plan priced in USD only, as staff post it to /api/v1/plans/ (a test overrides what it varies).
USD_PLAN = {
    "code": "team-m",
    "name": "Team",
    "tier": "professional",
    "interval": "month",
    "trial_days": 14,
    "prices": [{"amount": "49.00", "currency": "USD"}],
    "included_usage": {"api_calls": 1000},
    "overage_rates": {"api_calls": [{"amount": "0.01", "currency": "USD"}]},
}


def event_types(aggregate_id) -> list[str]:
    return list(
        StoredEvent.objects.filter(aggregate_id=str(aggregate_id))
        .order_by("position")
        .values_list("event_type", flat=True)
    )


def api_client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def staff_user(username="staff"):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(
        username=username, password="pw-Staff-12345", is_staff=True, is_superuser=True, email=f"{username}@example.com"
    )


def payment_succeeded_payload(customer_id: str, subscription_id: str | None, amount: str = "49.00 USD") -> dict:
    """A complete billing.PaymentSucceeded payload, as Billing publishes it, for an invoice
    Billing does not hold (tests that stand in for a payment)."""
    from billing.events import PaymentSucceeded
    from sharedkernel.values import Money

    return PaymentSucceeded(
        payment_id=str(uuid.uuid4()),
        invoice_id=str(uuid.uuid4()),
        invoice_number="INV-TEST",
        customer_id=str(customer_id),
        subscription_id=str(subscription_id) if subscription_id else None,
        amount=Money(*amount.split()),
        customer_name="Test",
        customer_email="test@example.com",
        plan_name="Test",
        billing_reason="subscription_create",
        attempt=1,
        paid_at=timezone.now(),
        gateway_reference="ch_test",
    ).payload()
