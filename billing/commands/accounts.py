"""Commands on the BillingAccount aggregate: open it, its payment method, its credit balance."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Unpack

from billing.commands.unit_of_work import UnitOfWork
from billing.models import (
    BilledSubscription,
    BillingAccount,
    CreditEntry,
)
from billing.ports import payment_gateway
from billing.values import (
    AccountHolder,
    InvalidPaymentMethod,
    PaymentMethodInfo,
    SubscriptionState,
)
from sharedkernel.bus import arrived
from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import Cause, current_cause
from sharedkernel.errors import InvalidInput, NotFound
from sharedkernel.values import Money


def load_accounts(customer_ids: Iterable, *, lock: bool = False) -> dict[str, BillingAccount]:
    query = BillingAccount.objects.filter(pk__in=set(customer_ids))
    if lock:
        query = query.select_for_update().order_by("pk")  # every batch locks rows in one order: no deadlock
    return {str(a.customer_id): a for a in query}


def load_account(customer_id, *, lock: bool = False) -> BillingAccount:
    account = load_accounts([customer_id], lock=lock).get(str(customer_id))
    if account is None:
        raise NotFound("No such customer.")
    return account


# -- accounts ---------------------------------------------------------------------------


def account_needed(customer_id) -> str:
    """What an event naming a customer waits for until Billing has the customer's account
    (its CustomerRegistered is still on its way); :func:`open_account` says it arrived."""
    return f"billing account of customer {customer_id}"


@command(aggregate="BillingAccount", records=("billing.BillingAccountOpened",))
def open_account(*, at: datetime, **holder: Unpack[AccountHolder]) -> BillingAccount | None:
    """OpenBillingAccount (from CustomerRegistered). Opening twice has one effect. Events that waited
    for the account (:func:`account_needed`) are handled once it commits.

    Records billing.BillingAccountOpened."""
    if BillingAccount.objects.filter(pk=holder["customer_id"]).exists():
        return None
    account = BillingAccount.open(at=at, **holder)
    uow = UnitOfWork()
    uow.add(account, current_cause())
    uow.commit()
    arrived(account_needed(holder["customer_id"]))
    return account


def update_payment_method(*, customer_id: str, token: str, clock: Clock | None = None) -> BillingAccount:
    """UpdatePaymentMethod: the gateway must know the token. Failed payments are retried at once (policy).

    The gateway describes the token first, with no transaction open; then the account is saved."""
    token = (token or "").strip()
    if not token:
        raise InvalidInput("Give a payment method token.", details={"token": "This field is required."})
    if not BillingAccount.objects.filter(pk=customer_id).exists():
        raise NotFound("No such customer.")
    try:
        method = payment_gateway().describe(token)
    except InvalidPaymentMethod as exc:
        raise InvalidInput(str(exc), details={"token": "unknown payment method"}) from None
    return _set_payment_method(customer_id=customer_id, method=method, clock=clock)


@command(aggregate="BillingAccount", records=("billing.PaymentMethodUpdated",), name="billing.set_payment_method")
def _set_payment_method(*, customer_id: str, method: PaymentMethodInfo, clock: Clock | None) -> BillingAccount:
    """The account takes the payment method the gateway described. Records billing.PaymentMethodUpdated."""
    account = load_account(customer_id, lock=True)
    account.set_payment_method(method, at=(clock or clock_for(account.test_clock_id)).now())
    uow = UnitOfWork()
    uow.touch(account, current_cause())
    uow.commit()
    return account


def credit_account(
    uow: UnitOfWork,
    account: BillingAccount,
    amount: Money,
    *,
    reason: str,
    source: str,
    at: datetime,
    cause: Cause,
    subscription_id=None,
    invoice_id=None,
    billed_in=None,
) -> None:
    balance = account.add_credit(
        amount, reason=reason, source=source, at=at, subscription_id=subscription_id, billed_in=billed_in
    )
    uow.touch(account, cause)
    uow.rows.append(
        CreditEntry(
            customer_id=account.customer_id,
            currency=amount.currency,
            amount_minor=amount.minor_units,
            balance_minor=balance.minor_units,
            source=source,
            reason=reason.strip(),
            subscription_id=subscription_id,
            invoice_id=invoice_id,
            created_at=at,
        )
    )


@command(aggregate="BillingAccount", records=("billing.CreditApplied",))
def grant_credit(*, customer_id: str, amount: Money, reason: str, clock: Clock | None = None) -> Money:
    """ApplyCredit (staff): returns the new balance in that currency. Refused with
    ``currency_mismatch`` in a currency the customer is not billed in (BillingAccount.add_credit).

    Records billing.CreditApplied."""
    if not amount.is_positive():
        raise InvalidInput("A credit is a positive amount.", details={"amount": "must be positive"})
    if not (reason or "").strip():
        raise InvalidInput("Say why the credit is given; the customer sees it.", details={"reason": "required"})
    account = load_account(customer_id, lock=True)
    uow = UnitOfWork()
    at = (clock or clock_for(account.test_clock_id)).now()
    billed_in = set(
        BilledSubscription.objects.filter(customer_id=account.customer_id)
        .exclude(status=SubscriptionState.CANCELLED)
        .values_list("currency", flat=True)
    )
    credit_account(
        uow,
        account,
        amount,
        reason=reason,
        source=CreditEntry.Source.GRANT,
        at=at,
        cause=current_cause(),
        billed_in=billed_in,
    )
    uow.commit()
    return account.credit(amount.currency)
