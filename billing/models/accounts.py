"""BillingAccount (the aggregate of a customer's money matters) and Billing's projections.

Billing learns about customers, plans and subscriptions only from Subscriptions'
events; ``BillingPlan`` and ``BilledSubscription`` are its own copies of what it
needs from them (prices, periods, status), kept up to date by policies.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Unpack

from django.db import models

from billing import events as ev
from billing.values import AccountHolder, Jurisdiction, PaymentMethodInfo, SubscriptionState
from sharedkernel.aggregates import AggregateRoot
from sharedkernel.errors import DomainError, InvalidTransition
from sharedkernel.periods import period_after
from sharedkernel.projection import applied_position_field
from sharedkernel.values import Money, money_from_minor


class CurrencyMismatch(DomainError):
    code = "currency_mismatch"


class BillingAccount(AggregateRoot):
    """A customer as Billing sees them: where they are taxed, how they pay, what credit they hold."""

    customer_id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=200)
    email = models.EmailField()
    user_id = models.IntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3)
    country = models.CharField(max_length=2)
    region = models.CharField(max_length=10, blank=True)
    tax_exempt = models.BooleanField(default=False)
    address = models.TextField(blank=True, help_text="Billing address printed on invoices.")
    payment_token = models.CharField(max_length=100, blank=True)
    payment_brand = models.CharField(max_length=30, blank=True)
    payment_last4 = models.CharField(max_length=4, blank=True)
    #: Credit balance per currency, in minor units: {"USD": 1250}.
    credit_minor = models.JSONField(default=dict, blank=True)
    test_clock_id = models.UUIDField(null=True, blank=True, db_index=True)
    opened_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @classmethod
    def open(cls, *, at: datetime, **holder: Unpack[AccountHolder]) -> BillingAccount:
        account = cls(
            **{**holder, "customer_id": uuid.UUID(str(holder["customer_id"])), "region": holder["region"] or ""},
            opened_at=at,
        )
        account.record(
            ev.BillingAccountOpened(
                customer_id=str(account.customer_id),
                currency=account.currency,
                country=account.country,
                region=account.region,
                tax_exempt=account.tax_exempt,
            ),
            at=at,
        )
        return account

    # -- payment method --------------------------------------------------------------
    @property
    def has_payment_method(self) -> bool:
        return bool(self.payment_token)

    @property
    def payment_method_label(self) -> str:
        return (
            PaymentMethodInfo(self.payment_token, self.payment_brand, self.payment_last4).label
            if self.payment_token
            else ""
        )

    def set_payment_method(self, method: PaymentMethodInfo | None, *, at: datetime) -> None:
        self.payment_token = method.token if method else ""
        self.payment_brand = method.brand if method else ""
        self.payment_last4 = method.last4 if method else ""
        self.record(
            ev.PaymentMethodUpdated(
                customer_id=str(self.customer_id),
                has_payment_method=method is not None,
                brand=self.payment_brand,
                last4=self.payment_last4,
            ),
            at=at,
        )

    # -- tax -------------------------------------------------------------------------
    @property
    def jurisdiction(self) -> Jurisdiction:
        return Jurisdiction(self.country, self.region)

    # -- credit ----------------------------------------------------------------------
    def credit(self, currency: str) -> Money:
        return Money.from_minor(int(self.credit_minor.get(currency, 0)), currency)

    def add_credit(
        self,
        amount: Money,
        *,
        reason: str,
        source: str,
        at: datetime,
        subscription_id: str | None = None,
        billed_in: Collection[str] | None = None,
    ) -> Money:
        """ApplyCredit: the amount pays down the next invoices in that currency.

        ``billed_in`` (a grant by staff): the currencies the customer is billed in besides the
        account's own; a credit in any other currency could never be used, so it is refused.
        """
        if billed_in is not None and amount.currency not in {self.currency, *billed_in}:
            raise CurrencyMismatch(
                f"The customer is billed in {', '.join(sorted({self.currency, *billed_in}))}, "
                f"not {amount.currency}; a credit in {amount.currency} could never be used.",
                details={"amount": {"currency": f"not a currency the customer is billed in: {amount.currency}"}},
            )
        if not amount.is_positive():
            raise InvalidTransition("A credit is a positive amount.")
        if not reason.strip():
            raise InvalidTransition("Say why the credit is given; the customer sees it.")
        balance = self.credit(amount.currency) + amount
        self.credit_minor = {**self.credit_minor, amount.currency: balance.minor_units}
        self.record(
            ev.CreditApplied(
                customer_id=str(self.customer_id),
                amount=amount,
                balance=balance,
                reason=reason.strip(),
                source=source,
                subscription_id=str(subscription_id) if subscription_id else None,
            ),
            at=at,
        )
        return balance

    def use_credit(self, up_to: Money) -> Money:
        """Take as much credit as there is, up to ``up_to``; returns what was taken."""
        if not up_to.is_positive():
            return Money.zero(up_to.currency)
        available = self.credit(up_to.currency)
        taken = min(available, up_to)
        if taken.is_positive():
            self.credit_minor = {**self.credit_minor, up_to.currency: (available - taken).minor_units}
        return taken


class CreditEntry(models.Model):
    """The ledger behind a credit balance: every grant and every use (append-only)."""

    class Source(models.TextChoices):
        GRANT = "grant", "Granted by staff"
        PRORATION = "proration", "Unused time after a downgrade"
        INVOICE = "invoice", "Used on an invoice"

    id = models.BigAutoField(primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField(help_text="Positive: credit given; negative: credit used.")
    balance_minor = models.BigIntegerField()
    source = models.CharField(max_length=20, choices=Source.choices)
    reason = models.CharField(max_length=300)
    invoice_id = models.UUIDField(null=True, blank=True)
    subscription_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "credit entries"

    def __str__(self) -> str:
        return f"{self.amount} ({self.get_source_display()})"

    amount = money_from_minor("amount_minor")
    balance = money_from_minor("balance_minor")


class BillingPlan(models.Model):
    """Billing's copy of a plan (from PlanCreated/PlanUpdated/PlanArchived/PlanRestored)."""

    plan_id = models.UUIDField(primary_key=True)
    code = models.CharField(max_length=50)
    name = models.CharField(max_length=100)
    tier = models.CharField(max_length=20)
    interval = models.CharField(max_length=10)
    #: {"USD": "49.99", ...}
    prices = models.JSONField(default=dict)
    included_usage = models.JSONField(default=dict)
    #: {"api_calls": {"USD": "0.0100"}}
    overage_rates = models.JSONField(default=dict)
    archived = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def price(self, currency: str) -> Money | None:
        amount = self.prices.get(currency)
        return Money(amount, currency) if amount is not None else None


class BilledSubscription(models.Model):
    """Billing's view of a subscription: what to charge, for which period, and whether to."""

    subscription_id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    plan_id = models.UUIDField()
    plan_name = models.CharField(max_length=100)
    plan_code = models.CharField(max_length=50)
    interval = models.CharField(max_length=10)
    currency = models.CharField(max_length=3)
    price_minor = models.BigIntegerField()
    status = models.CharField(max_length=20)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    #: Where the subscription's period grid is counted from (published in its events); the next
    #: period is sharedkernel.periods.period_after(billing_anchor, interval, period_end).
    billing_anchor = models.DateTimeField(null=True, blank=True)
    #: The subscription's aggregate version this row reflects (shown to staff; it does not order events).
    source_version = models.PositiveIntegerField(default=0)
    #: Position of the last of the subscription's events applied here: what orders them (sharedkernel.projection).
    source_position = applied_position_field()
    test_clock_id = models.UUIDField(null=True, blank=True)
    #: The plan version billed, and a price change Subscriptions scheduled (from PriceChangeScheduled).
    plan_version = models.PositiveIntegerField(default=1)
    coming_price_minor = models.BigIntegerField(null=True, blank=True)
    coming_version = models.PositiveIntegerField(null=True, blank=True)
    coming_from = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.plan_name} for {self.customer_id}"

    price = money_from_minor("price_minor")

    def price_from(self, start: datetime) -> tuple[Money, int]:
        """The price (and version) of a period starting at ``start``: the coming one once it applies."""
        if self.coming_from is not None and start >= self.coming_from:
            return Money.from_minor(self.coming_price_minor, self.currency), self.coming_version
        return self.price, self.plan_version

    @property
    def live(self) -> bool:
        return self.status != SubscriptionState.CANCELLED

    def next_period(self) -> tuple[datetime, datetime]:
        """The period after the current one, by the subscription's own rule (a Jan 31 anchor: Feb 28, Mar 31)."""
        return period_after(self.billing_anchor or self.period_start, self.interval, self.period_end)
