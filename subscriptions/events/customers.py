"""Events of the Customer aggregate."""

from __future__ import annotations

from dataclasses import dataclass

from sharedkernel.events import Event
from sharedkernel.values import EmailAddress


@dataclass(frozen=True)
class CustomerRegistered(Event):
    """A customer exists. Billing opens an account, Notifications a recipient."""

    event_type = "subscriptions.CustomerRegistered"
    aggregate_type = "Customer"
    aggregate_id_field = "customer_id"

    customer_id: str
    name: str
    email: EmailAddress
    currency: str  #: preferred ISO 4217 currency
    country: str  #: ISO 3166-1 alpha-2
    region: str  #: state/province code, "" when none
    tax_exempt: bool
    test_clock_id: str | None = None  #: the test clock the customer lives on
    user_id: int | None = None  #: their login, if they have one
