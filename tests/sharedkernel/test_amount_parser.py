"""The one strict reading of a client's amount (API.md, Money; docs/api-input.md), by property.

Valid strings per currency (JPY 0, USD 2, KWD 3 minor digits; unit rates 6) come back as
exactly the number they spell; every other shape is refused, naming the part that is wrong.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sharedkernel.values import RATE_DECIMALS, AmountRefused, Money, parse_amount, parse_currency

DIGITS = {"JPY": 0, "USD": 2, "KWD": 3}
currencies = st.sampled_from(sorted(DIGITS))
ascii_digits = st.text(alphabet="0123456789", min_size=1, max_size=12)


@st.composite
def valid_amounts(draw, *, rate: bool = False):
    currency = draw(currencies)
    places = RATE_DECIMALS if rate else DIGITS[currency]
    whole = draw(ascii_digits)
    fraction = draw(st.text(alphabet="0123456789", min_size=1, max_size=places)) if places else ""
    text = whole + ("." + fraction if fraction and draw(st.booleans()) else "")
    return currency, text


@given(valid_amounts())
@example(("USD", "5"))
@example(("KWD", "1.250"))
@example(("JPY", "5000"))
@example(("USD", "999999999999.99"))
def test_valid_amounts_round_trip_exactly(case):
    currency, text = case
    money = Money.parse(text, currency)
    assert money.amount == Decimal(text)
    assert money.currency == currency
    # What the API answers has exactly the minor digits and reads back as the same money.
    shown = money.to_json()["amount"]
    assert len(shown.partition(".")[2]) == DIGITS[currency]
    assert Money.parse(shown, currency) == money


@given(valid_amounts(), st.booleans())
def test_negatives_only_where_they_make_sense(case, allowed):
    currency, text = case
    if allowed:
        assert Money.parse("-" + text, currency, allow_negative=True).amount == -Decimal(text)
    else:
        with pytest.raises(AmountRefused) as refused:
            Money.parse("-" + text, currency)
        assert refused.value.field == "amount"


@given(valid_amounts(rate=True))
@example(("USD", "0.000125"))
@example(("JPY", "0.5"))
def test_unit_rates_carry_up_to_six_decimals_exactly(case):
    currency, text = case
    assert parse_amount(text, currency, decimals=RATE_DECIMALS) == Decimal(text)


def _mangled(draw, currency: str) -> str:
    whole = draw(ascii_digits)
    fraction = draw(st.text(alphabet="0123456789", min_size=1, max_size=2))
    plain = f"{whole}.{fraction}" if DIGITS[currency] >= 2 else whole
    kind = draw(
        st.sampled_from(
            ["exponent", "space", "plus", "underscore", "non_ascii", "decimals", "integer_digits", "empty", "dots"]
        )
    )
    if kind == "exponent":
        return plain + draw(st.sampled_from(["e3", "E+400", "e-2", "E10"]))
    if kind == "space":
        where = draw(st.integers(0, len(plain)))
        return plain[:where] + draw(st.sampled_from([" ", "\t", "\n", "\u00a0"])) + plain[where:]
    if kind == "plus":
        return "+" + plain
    if kind == "underscore":
        return whole[:1] + "_" + whole[1:] + "0"
    if kind == "non_ascii":
        # Arabic-Indic, Devanagari, full-width digits and superscripts: str.isdigit() says yes, we say no.
        foreign = draw(st.sampled_from(["\u0661\u0662", "\u0967", "\uff11", "\u00b2", "\u0663.\u0665"]))
        return whole + foreign
    if kind == "decimals":
        return f"{whole}." + "1" * (DIGITS[currency] + draw(st.integers(1, 4)))
    if kind == "integer_digits":
        return "1" * draw(st.integers(13, 40))
    if kind == "empty":
        return draw(st.sampled_from(["", "-", ".", "-.", "."]))
    return f"{whole}..{fraction}"


@st.composite
def invalid_amounts(draw):
    currency = draw(currencies)
    return currency, _mangled(draw, currency)


@given(invalid_amounts())
@example(("USD", "1e3"))
@example(("USD", " 1.00 "))
@example(("USD", "\u0661\u0662"))
@example(("KWD", "1.2500"))
@example(("USD", "+1.00"))
@example(("USD", "1_000.00"))
@example(("USD", "1234567890123"))
@example(("USD", "1E+400"))
@example(("USD", "12345678901234567890123456"))
@example(("JPY", "10.5"))
@example(("USD", "NaN"))
@example(("USD", "Infinity"))
def test_every_other_shape_is_refused_naming_the_amount(case):
    currency, text = case
    with pytest.raises(AmountRefused) as refused:
        Money.parse(text, currency, allow_negative=True)
    assert refused.value.field == "amount"
    assert refused.value.message.endswith(".")


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.none(), st.booleans(), st.lists(st.text())))
def test_anything_but_a_string_is_refused(value):
    with pytest.raises(AmountRefused) as refused:
        Money.parse(value, "USD")
    assert refused.value.field == "amount"


@given(
    st.one_of(
        st.sampled_from(["usd", "Usd", "USD ", " USD", "US", "USDD", "XXX", "XAU", "ABC", "", "U\u0405D"]),
        st.text(max_size=5).filter(lambda code: code not in DIGITS and code != "EUR"),
        st.integers(),
        st.none(),
    )
)
def test_lowercase_unknown_or_unbillable_currencies_are_refused_naming_the_currency(code):
    try:
        valid = parse_currency(code)
    except AmountRefused as refused:
        assert refused.field == "currency"
    else:  # the generator found another real code: it must be upper-case ISO 4217
        assert valid.isascii() and valid.isupper() and len(valid) == 3
