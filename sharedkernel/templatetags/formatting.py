"""One way to show money and counts on every page: ``{{ price|money }}`` → "4,600.00 EUR",
``{{ used|number }}`` → "100,000", grouped and with the decimal mark of the active locale
(LANGUAGE_CODE; en-us by default). A builtin (config/settings.py), so no template loads it."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.formats import number_format

from sharedkernel.values import Money, minor_digits

register = template.Library()


#: The typographic minus sign every page shows before a negative amount ("−22.48 USD").
MINUS = "\u2212"


def format_money(value, *, minus: str = MINUS) -> str:
    """The one display form of money: grouped, the currency's decimals, ``minus`` before a
    negative amount. Pages use the typographic minus; the PDF passes "-" (its built-in fonts
    have no U+2212). The API never uses this: its JSON amounts stay plain ASCII decimals."""
    if value is None or value == "":
        return ""
    if isinstance(value, dict):
        value = Money(value["amount"], value["currency"])
    if not isinstance(value, Money):
        return str(value)
    amount = number_format(
        abs(value.amount), decimal_pos=minor_digits(value.currency), use_l10n=True, force_grouping=True
    )
    sign = minus if value.amount < 0 else ""
    return f"{sign}{amount} {value.currency}"


@register.filter
def money(value) -> str:
    """A Money (or its {"amount", "currency"} dict) with its currency's decimals, grouped."""
    return format_money(value)


@register.filter
def number(value) -> str:
    """A count, grouped ("100,000"); a Decimal keeps its places."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        return str(value)
    places = 0 if isinstance(value, int) else None
    return number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)
