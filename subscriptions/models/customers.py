"""The Customer aggregate (who subscribes) and the sign-up profile kept until the e-mail is verified."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models

from sharedkernel.aggregates import AggregateRoot
from sharedkernel.errors import InvalidInput
from sharedkernel.models import TestClock
from sharedkernel.values import EmailAddress, minor_digits
from subscriptions import events as ev
from subscriptions.values import CustomerDetails


class Customer(AggregateRoot):
    """Who subscribes: identity and registration details.

    Billing keeps the billing address and payment method; Notifications keeps
    the e-mail for sending. They learn them from CustomerRegistered.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254)
    currency = models.CharField(max_length=3, help_text="Preferred currency for new subscriptions.")
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2.")
    region = models.CharField(max_length=10, blank=True, help_text="State or province code.")
    tax_exempt = models.BooleanField(default=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="customer"
    )
    test_clock = models.ForeignKey(TestClock, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    #: Learnt from billing.PaymentMethodUpdated; decides what happens when a trial ends.
    has_payment_method = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @classmethod
    def register(
        cls, details: CustomerDetails, *, user=None, test_clock: TestClock | None = None, at: datetime
    ) -> Customer:
        name = (details.name or "").strip()
        if not name:
            raise InvalidInput("A customer needs a name.", details={"name": "required"})
        try:
            address = EmailAddress(details.email)
        except ValueError as exc:
            raise InvalidInput(str(exc), details={"email": "invalid"}) from None
        currency = (details.currency or "").upper()
        minor_digits(currency)  # raises UnknownCurrency for anything not billable
        country = (details.country or "").upper()
        if len(country) != 2 or not country.isalpha():
            raise InvalidInput("Country is an ISO 3166-1 alpha-2 code, e.g. US.", details={"country": "invalid"})
        customer = cls(
            id=uuid.uuid4(),
            name=name,
            email=address.value,
            currency=currency,
            country=country,
            region=(details.region or "").upper(),
            tax_exempt=details.tax_exempt,
            user=user,
            test_clock=test_clock,
            created_at=at,
        )
        customer.record(
            ev.CustomerRegistered(
                customer_id=str(customer.id),
                name=customer.name,
                email=address,
                currency=currency,
                country=country,
                region=customer.region,
                tax_exempt=customer.tax_exempt,
                test_clock_id=str(test_clock.pk) if test_clock else None,
                user_id=user.pk if user else None,
            ),
            at=at,
        )
        return customer

    def note_payment_method(self, *, present: bool) -> None:
        """Billing told us whether a payment method is on file (no event: it is Billing's fact)."""
        self.has_payment_method = present


class SignupProfile(models.Model):
    """What a person typed at sign-up, kept until their e-mail is verified."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signup_profile")
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    country = models.CharField(max_length=2)
    region = models.CharField(max_length=10, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.country}, {self.currency})"
