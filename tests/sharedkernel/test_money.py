from decimal import Decimal

import pytest

from sharedkernel.values import CurrencyMismatch, Money, UnknownCurrency, minor_digits, money_from_minor, round_half_up


@pytest.mark.parametrize(("currency", "digits"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3)])
def test_minor_digits_follow_iso_4217(currency, digits):
    assert minor_digits(currency) == digits


@pytest.mark.parametrize("code", ["XXX", "XAU", "ABC", "", "usd1"])
def test_unbillable_or_unknown_currencies_are_refused(code):
    with pytest.raises(UnknownCurrency):
        Money("1", code)


def test_amount_is_held_at_exactly_the_minor_precision():
    assert Money("49.9", "USD").to_json() == {"amount": "49.90", "currency": "USD"}
    assert Money(5000, "JPY").to_json() == {"amount": "5000", "currency": "JPY"}
    assert Money("1.25", "KWD").to_json() == {"amount": "1.250", "currency": "KWD"}


def test_more_digits_than_the_currency_has_is_an_error_not_a_silent_rounding():
    with pytest.raises(ValueError, match="more decimals"):
        Money("49.999", "USD")
    with pytest.raises(ValueError, match="more decimals"):
        Money("10.5", "JPY")


def test_floats_are_refused():
    with pytest.raises(TypeError, match="float"):
        Money(0.1, "USD")


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("2.345", "USD", "2.35"),
        ("2.344", "USD", "2.34"),
        ("-2.345", "USD", "-2.35"),  # half away from zero, symmetric for credits
        ("1234.5", "JPY", "1235"),
        ("1234.4", "JPY", "1234"),
        ("0.0005", "KWD", "0.001"),
        ("0.0004", "KWD", "0.000"),
    ],
)
def test_rounding_is_half_up_at_the_minor_unit(value, currency, expected):
    assert Money.rounded(value, currency).amount == Decimal(expected)
    assert round_half_up(Decimal(value), currency) == Decimal(expected)


def test_adding_same_currency_is_exact():
    total = Money("0.10", "USD") + Money("0.20", "USD")
    assert total == Money("0.30", "USD")


def test_adding_different_currencies_raises():
    with pytest.raises(CurrencyMismatch):
        Money("1.00", "USD") + Money("1.00", "EUR")
    with pytest.raises(CurrencyMismatch):
        _ = Money("1.00", "USD") < Money("2.00", "EUR")


def test_times_rounds_once_half_up():
    assert Money("10.00", "USD").times(Decimal(1) / Decimal(3)) == Money("3.33", "USD")
    assert Money("3000", "JPY").times(Decimal("0.5005")) == Money("1502", "JPY")


def test_minor_units_round_trip():
    for money in (Money("49.99", "USD"), Money("5000", "JPY"), Money("1.250", "KWD"), Money("-3.07", "EUR")):
        assert Money.from_minor(money.minor_units, money.currency) == money


def test_from_json_validates_shape():
    assert Money.from_json({"amount": "1.00", "currency": "usd"}) == Money("1", "USD")
    with pytest.raises(ValueError):
        Money.from_json({"amount": "1.00", "currency": "USD", "extra": 1})
    with pytest.raises(ValueError):
        Money.from_json({"currency": "USD"})


def test_total_of_nothing_is_zero_in_the_currency():
    assert Money.total([], "KWD") == Money("0.000", "KWD")
    assert Money.total([Money("1.5", "KWD"), Money("0.001", "KWD")], "KWD") == Money("1.501", "KWD")


def test_money_is_immutable_and_hashable():
    money = Money("1.00", "USD")
    with pytest.raises(AttributeError):
        money.amount = Decimal(2)
    assert {money, Money("1", "USD")} == {money}


class _Invoice:
    currency = "JPY"


class _Row:
    amount = money_from_minor("amount_minor")
    refund = money_from_minor("refund_minor", optional=True)
    line_amount = money_from_minor("amount_minor", currency="invoice.currency")

    def __init__(self, amount_minor: int, refund_minor: int | None) -> None:
        self.currency, self.invoice = "KWD", _Invoice()
        self.amount_minor, self.refund_minor = amount_minor, refund_minor


def test_a_stored_amount_reads_as_money_in_its_rows_currency_or_a_related_ones():
    row = _Row(1250, None)
    assert row.amount == Money("1.250", "KWD")
    assert row.line_amount == Money(1250, "JPY")
    assert row.refund is None
    assert _Row(1250, 5).refund == Money("0.005", "KWD")


def test_a_stored_amount_is_read_only_and_never_silently_absent():
    row = _Row(1250, None)
    with pytest.raises(AttributeError):
        row.amount = Money("1.000", "KWD")
    row.amount_minor = None
    with pytest.raises(TypeError):
        _ = row.amount
