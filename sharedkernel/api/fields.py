"""Serializer fields for the shared vocabulary."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sharedkernel.values import Money, UnknownCurrency, minor_digits

MONEY_SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {"type": "string", "example": "49.99", "description": "Exactly the currency's minor digits."},
        "currency": {"type": "string", "example": "USD", "description": "ISO 4217 code."},
    },
    "required": ["amount", "currency"],
}


@extend_schema_field(MONEY_SCHEMA)
class MoneyField(serializers.Field):
    """Money as ``{"amount": "49.99", "currency": "USD"}`` — never a float."""

    default_error_messages = {
        "shape": 'Money is {"amount": "<decimal string>", "currency": "<ISO 4217 code>"}.',
        "currency": "{currency!r} is not a billable ISO 4217 currency.",
        "float": "Send the amount as a decimal string, not a number, so no precision is lost.",
        "amount": "{amount!r} is not a decimal amount with at most {digits} decimals for {currency}.",
        "negative": "The amount must not be negative.",
        "positive": "The amount must be greater than zero.",
    }

    def __init__(self, *, allow_negative: bool = False, positive: bool = False, **kwargs):
        self.allow_negative = allow_negative
        self.positive = positive
        super().__init__(**kwargs)

    def to_representation(self, value: Money) -> dict:
        return value.to_json()

    def to_internal_value(self, data) -> Money:
        if not isinstance(data, dict) or "amount" not in data or "currency" not in data or len(data) != 2:
            self.fail("shape")
        amount, currency = data["amount"], data["currency"]
        if isinstance(amount, float):
            self.fail("float")
        if not isinstance(currency, str):
            self.fail("shape")
        try:
            digits = minor_digits(currency)
        except UnknownCurrency:
            self.fail("currency", currency=currency)
        try:
            money = Money(str(amount), currency)
        except (ValueError, TypeError):
            self.fail("amount", amount=amount, digits=digits, currency=currency.upper())
        if money.is_negative() and not self.allow_negative:
            self.fail("negative")
        if self.positive and not money.is_positive():
            self.fail("positive")
        return money


class CurrencyField(serializers.CharField):
    default_error_messages = {"currency": "{value!r} is not a billable ISO 4217 currency."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 3)
        kwargs.setdefault("min_length", 3)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> str:
        value = super().to_internal_value(data).upper()
        try:
            minor_digits(value)
        except UnknownCurrency:
            self.fail("currency", value=value)
        return value
