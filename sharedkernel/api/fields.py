"""Serializer fields for the shared vocabulary.

Every amount a client sends is read by :func:`sharedkernel.values.parse_amount`
(API.md, Money): a refusal names the part of the money that is wrong, e.g.
``{"amount": {"currency": ["The currency is a three-letter upper-case ISO 4217 code, e.g. USD."]}}``.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sharedkernel.values import AmountRefused, Money, UnitRate, parse_currency

MONEY_SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {
            "type": "string",
            "example": "49.99",
            "pattern": r"^-?[0-9]{1,12}(\.[0-9]+)?$",
            "description": "A plain decimal string with at most the currency's minor digits (JPY 0, USD 2, "
            "KWD 3) and at most 12 digits before the point; exactly the minor digits on output.",
        },
        "currency": {"type": "string", "example": "USD", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code."},
    },
    "required": ["amount", "currency"],
    "additionalProperties": False,
}


RATE_SCHEMA = {
    "type": "object",
    "properties": {
        "amount": {
            "type": "string",
            "example": "0.000125",
            "pattern": r"^[0-9]{1,12}(\.[0-9]{1,6})?$",
            "description": "Price per unit: a plain decimal string with at most 6 decimals and at most 12 digits "
            "before the point; on output as many decimals as it needs, at least the currency's minor digits.",
        },
        "currency": MONEY_SCHEMA["properties"]["currency"],
    },
    "required": ["amount", "currency"],
    "additionalProperties": False,
}


def refusal(exc: AmountRefused) -> serializers.ValidationError:
    return serializers.ValidationError({exc.field: [exc.message]})


@extend_schema_field(MONEY_SCHEMA)
class MoneyField(serializers.Field):
    """Money as ``{"amount": "49.99", "currency": "USD"}`` — never a float."""

    default_error_messages = {
        "shape": 'Money is an object with exactly two keys, "amount" (a decimal string) and "currency".',
        "positive": "The amount must be greater than zero.",
    }

    def __init__(self, *, allow_negative: bool = False, positive: bool = False, **kwargs):
        self.allow_negative = allow_negative
        self.positive = positive
        super().__init__(**kwargs)

    def to_representation(self, value: Money) -> dict:
        return value.to_json()

    def to_internal_value(self, data) -> Money:
        if not isinstance(data, dict) or set(data) != {"amount", "currency"}:
            self.fail("shape")
        try:
            money = Money.parse(data["amount"], data["currency"], allow_negative=self.allow_negative)
        except AmountRefused as exc:
            raise refusal(exc) from None
        if self.positive and not money.is_positive():
            raise serializers.ValidationError({"amount": [self.error_messages["positive"]]})
        return money


def parse_rate(data) -> UnitRate:
    """A unit rate ``{"amount", "currency"}`` with up to RATE_DECIMALS decimals, read strictly."""
    if not isinstance(data, dict) or set(data) != {"amount", "currency"}:
        raise serializers.ValidationError([MoneyField.default_error_messages["shape"]])
    try:
        return UnitRate.parse(data["amount"], data["currency"])
    except AmountRefused as exc:
        raise refusal(exc) from None


@extend_schema_field(RATE_SCHEMA)
class UnitRateField(serializers.Field):
    """A unit rate as ``{"amount": "0.000125", "currency": "USD"}`` (up to 6 decimals)."""

    def to_representation(self, value: UnitRate) -> dict:
        return value.to_json()

    def to_internal_value(self, data) -> UnitRate:
        return parse_rate(data)


@extend_schema_field({"type": "string", "example": "USD", "pattern": "^[A-Z]{3}$"})
class CurrencyField(serializers.Field):
    """An upper-case ISO 4217 code SubscriptionHub bills in ("usd" is refused, as in Money)."""

    def to_representation(self, value: str) -> str:
        return value

    def to_internal_value(self, data) -> str:
        try:
            return parse_currency(data)
        except AmountRefused as exc:
            raise serializers.ValidationError(exc.message) from None


def refuse_non_strings_as_text() -> None:
    """Every text field of the API takes JSON strings only: DRF's ``CharField`` (and the e-mail,
    URL, slug and regex fields built on it) would store ``0`` as ``"0"`` and ``12.5`` as ``"12.5"``,
    so a client's wrong type came back 201 as if it were meant. Installed once, at start-up
    (``SharedKernelConfig.ready``), so no serializer can forget it; the refusal is DRF's own
    "Not a valid string." under the field's name."""
    if getattr(serializers.CharField.to_internal_value, "strings_only", False):
        return
    lenient = serializers.CharField.to_internal_value

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return lenient(self, data)

    to_internal_value.strings_only = True
    serializers.CharField.to_internal_value = to_internal_value
