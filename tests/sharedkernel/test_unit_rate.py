"""UnitRate: a price per unit finer than the minor unit, charged with one rounding per line."""

from decimal import Decimal

import pytest

from sharedkernel.values import AmountRefused, Money, UnitRate


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("0.000125", "USD", "0.000125"),  # as many decimals as it needs
        ("0.010000", "USD", "0.01"),  # no trailing zeros beyond the minor digits
        ("5", "USD", "5.00"),  # at least the minor digits
        ("100", "JPY", "100"),
        ("0.5", "JPY", "0.5"),  # finer than a yen
        ("1.25", "KWD", "1.250"),
        ("0", "USD", "0.00"),
        ("999999999999.999999", "USD", "999999999999.999999"),
    ],
)
def test_a_rate_keeps_its_exact_amount_and_prints_at_least_the_minor_digits(amount, currency, shown):
    rate = UnitRate(amount, currency)
    assert rate.to_json() == {"amount": shown, "currency": currency}
    assert UnitRate.from_json(rate.to_json()) == rate
    assert rate.amount == Decimal(amount)


@pytest.mark.parametrize("amount", ["0.0000001", "-0.01", "1000000000000", "NaN"])
def test_a_rate_is_non_negative_with_at_most_6_decimals_and_12_integer_digits(amount):
    with pytest.raises(ValueError):
        UnitRate(amount, "USD")


def test_floats_and_unknown_currencies_are_refused():
    with pytest.raises(TypeError):
        UnitRate(0.01, "USD")
    with pytest.raises(ValueError):
        UnitRate("0.01", "XXX")


def test_parse_reads_a_clients_rate_strictly_naming_the_part():
    assert UnitRate.parse("0.000125", "USD") == UnitRate("0.000125", "USD")
    for amount in ("0.0000001", "1e-3", " 0.01", "-0.01", "1234567890123"):
        with pytest.raises(AmountRefused) as refused:
            UnitRate.parse(amount, "USD")
        assert refused.value.field == "amount"
    with pytest.raises(AmountRefused) as refused:
        UnitRate.parse("0.01", "usd")
    assert refused.value.field == "currency"


def test_a_rate_stored_as_money_reads_as_the_same_rate():
    # events and rows written before rates were finer carried Money JSON at the minor digits
    assert UnitRate.from_json({"amount": "0.01", "currency": "USD"}) == UnitRate("0.01", "USD")
    assert UnitRate.from_json({"amount": "0.0100", "currency": "USD"}).to_json()["amount"] == "0.01"
    assert UnitRate.of(Money("0.10", "USD")) == UnitRate("0.1", "USD")


# -- charging: quantity × rate, exact, rounded half-up once for the line ----------------------


def test_a_line_is_rounded_once_not_per_unit():
    # 3 × 0.004999 = 0.014997 → 0.01 (rounding each unit first would give 3 × 0.00 = 0.00)
    assert UnitRate("0.004999", "USD").charge(3) == Money("0.01", "USD")


def test_a_million_and_one_calls_at_an_eighth_of_a_thousandth_of_a_cent():
    # 1,000,001 × 0.000125 = 125.000125 → 125.00
    assert UnitRate("0.000125", "USD").charge(1_000_001) == Money("125.00", "USD")


def test_exact_halves_round_up_not_to_even():
    # 4 × 0.00125 = 0.005 → 0.01; 2 × 0.0025 = 0.005 → 0.01; 1 × 0.5 JPY → 1 JPY
    assert UnitRate("0.00125", "USD").charge(4) == Money("0.01", "USD")
    assert UnitRate("0.0025", "USD").charge(2) == Money("0.01", "USD")
    assert UnitRate("0.5", "JPY").charge(1) == Money("1", "JPY")
    assert UnitRate("0.0005", "KWD").charge(1) == Money("0.001", "KWD")
    # just under a half goes down
    assert UnitRate("0.004999", "USD").charge(1) == Money("0.00", "USD")


def test_charging_stays_exact_at_the_bounds():
    # 10^15 units (the largest record) × the largest rate needs 33 significant digits
    charged = UnitRate("999999999999.999999", "USD").charge(10**15)
    assert charged.amount == Decimal("999999999999999999000000000") and charged.currency == "USD"
    assert UnitRate("0.000001", "USD").charge(10**15 + 5_000) == Money("1000000000.01", "USD")
    assert UnitRate("0.000125", "USD").charge(0) == Money("0.00", "USD")
    with pytest.raises(TypeError):
        UnitRate("0.01", "USD").charge(Decimal("1.5"))
