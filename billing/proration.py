"""Proration — the one implementation (DESIGN.md).

For a change at time t in period [s, e):

    credit line = −old_price × (e − t) / (e − s)
    charge line =  new_price × (e' − t) / (e' − s')

each rounded half-up to the currency's minor unit, counted in seconds. [s', e')
is the period after the change: the same period when the interval stays, a new
period starting at t when it changes (monthly ↔ annual), in which case the new
plan is charged in full. Net > 0 is invoiced and charged now; net < 0 becomes
account credit for the next invoice.

The PlanChanged policy, the API preview and the customer page preview all
call :func:`prorate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from billing.values import InvoicePeriod
from sharedkernel.values import CurrencyMismatch, Money


@dataclass(frozen=True, slots=True)
class ProrationLine:
    description: str
    amount: Money


@dataclass(frozen=True, slots=True)
class Proration:
    lines: tuple[ProrationLine, ...]
    net: Money

    @property
    def charges_now(self) -> bool:
        return self.net.is_positive()

    @property
    def credits(self) -> bool:
        return self.net.is_negative()

    @property
    def size(self) -> Money:
        """How much is charged or credited (the net without its sign)."""
        return abs(self.net)

    def credit_with_tax(self, tax_rate: Decimal | None) -> tuple[Money, Money]:
        """A downgrade's credit, tax included: (credit, the tax in it).

        The unused part of the old plan was paid with its tax, and credit pays down later
        invoices after their tax (tax-inclusive amounts). Crediting only the net would keep
        the tax of service never delivered, so the credit returns it at the rate the period
        was invoiced with (None: not taxed, e.g. exempt). See docs/billing.md."""
        if not self.credits:
            raise ValueError("Only a proration that credits has a credit.")
        tax = self.size.times(tax_rate) if tax_rate else Money.zero(self.net.currency)
        return self.size + tax, tax


def _fraction_left(period: InvoicePeriod, at: datetime) -> Decimal:
    total = int((period.end - period.start).total_seconds())
    left = int((period.end - at).total_seconds())
    return Decimal(left) / Decimal(total)


def prorate(
    *,
    old_plan: str,
    old_price: Money,
    new_plan: str,
    new_price: Money,
    period: InvoicePeriod,
    new_period: InvoicePeriod,
    at: datetime,
) -> Proration:
    if old_price.currency != new_price.currency:
        raise CurrencyMismatch("A plan change is prorated in the subscription's one currency.")
    if not period.start <= at < period.end:
        raise ValueError("The change must happen inside the current period.")
    if not new_period.start <= at < new_period.end:
        raise ValueError("The change must happen inside the new period.")
    credit = Money.rounded(-old_price.amount * _fraction_left(period, at), old_price.currency)
    charge = Money.rounded(new_price.amount * _fraction_left(new_period, at), new_price.currency)
    lines = (
        ProrationLine(f"Unused time on {old_plan} ({at:%b %-d} – {period.end:%b %-d, %Y})", credit),
        ProrationLine(f"Remaining time on {new_plan} ({at:%b %-d} – {new_period.end:%b %-d, %Y})", charge),
    )
    return Proration(lines=lines, net=credit + charge)
