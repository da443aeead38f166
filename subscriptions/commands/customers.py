"""Commands on the Customer aggregate."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.errors import DomainError, InvalidInput
from sharedkernel.eventstore import save_and_publish
from sharedkernel.models import CustomerLogin, TestClock
from sharedkernel.values import EmailAddress, UnknownCurrency
from subscriptions.models import Customer
from subscriptions.values import CustomerDetails


class EmailTaken(DomainError):
    code = "email_taken"


@command(aggregate="Customer", records=("subscriptions.CustomerRegistered",))
def register_customer(
    *,
    user=None,
    with_api_key: bool = False,
    test_clock_id: str | None = None,
    clock: Clock | None = None,
    **details,
) -> tuple[Customer, str | None]:
    """RegisterCustomer → CustomerRegistered. With ``with_api_key`` a login is made
    for the customer and its API key returned (shown once). ``details`` are the keywords of
    :class:`~subscriptions.values.CustomerDetails`: ``name``, ``email``, ``currency``, ``country`` and,
    optionally, ``region``, ``tax_exempt``.

    One customer per e-mail address, compared case-insensitively (sign-up promises it):
    a second registration is refused with ``email_taken`` before anything is written.
    """
    details = CustomerDetails(**details)
    try:
        address = EmailAddress(details.email).value
    except ValueError as exc:
        raise InvalidInput(str(exc), details={"email": "invalid"}) from None
    if connection.vendor == "postgresql":  # two registrations of one address: the second waits, then sees the first
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(lower(%s)))", [address])
    if Customer.objects.filter(email__iexact=address).exists():
        raise EmailTaken(
            "A customer with this e-mail address is already registered.", details={"email": "already registered"}
        )
    test_clock = None
    if test_clock_id:
        test_clock = TestClock.objects.filter(pk=test_clock_id).first()
        if test_clock is None:
            raise InvalidInput("No such test clock.", details={"test_clock": "does not exist"})
    clock = clock or clock_for(test_clock_id)
    api_key = None
    if with_api_key and user is None:
        user = get_user_model().objects.create_user(
            username=f"customer-{secrets.token_hex(8)}", email=address, password=None
        )
        api_key = Token.objects.create(user=user).key
    try:
        customer = Customer.register(details, user=user, test_clock=test_clock, at=clock.now())
    except UnknownCurrency as exc:
        raise InvalidInput(str(exc), details={"currency": "not a billable ISO 4217 code"}) from None
    save_and_publish(customer)
    if user is not None:
        CustomerLogin.objects.create(user=user, customer_id=customer.id)
    return customer, api_key


@command(aggregate="Customer", records=())
def record_payment_method(*, customer_id: str, present: bool) -> Customer | None:
    """Billing told us whether a payment method is on file (billing.PaymentMethodUpdated). Records no event:
    it is Billing's fact, kept for the trial's end. Returns None for a customer we do not know."""
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        return None
    customer.note_payment_method(present=present)
    customer.save(update_fields=["has_payment_method"])
    return customer
