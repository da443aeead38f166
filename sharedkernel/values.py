"""Value objects every context speaks: Money, UnitRate and EmailAddress.

No Django here (an import-linter contract keeps it out): these are plain,
immutable values, equal by their attributes, valid from construction on.

A model stores an amount as an integer of minor units beside its currency and reads it back as
Money through :func:`money_from_minor`.

Money rounding happens in exactly one place, :func:`round_half_up`, to the
currency's minor unit (ISO 4217: JPY 0 digits, USD 2, KWD 3). Every amount a
Money holds is already at that precision, so sums are exact and a float can
never sneak in.

A :class:`UnitRate` (the price of one unit of usage) may be finer than the minor
unit, up to :data:`RATE_DECIMALS` decimals; it becomes Money only through
:meth:`UnitRate.charge`, which rounds once per charged line, never per unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from functools import cache
from operator import attrgetter
from typing import ClassVar, Self

import moneyed
from email_validator import EmailNotValidError, validate_email

# Codes in ISO 4217 that are not money a customer can be billed in
# (precious metals, testing and fund codes).
_NOT_BILLABLE = {"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"}


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


class UnknownCurrency(ValueError):
    """The code is not a billable ISO 4217 currency."""


@cache
def minor_digits(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    code = (currency or "").upper()
    if code in _NOT_BILLABLE:
        raise UnknownCurrency(f"{currency!r} is not a billable currency.")
    try:
        sub_unit = moneyed.get_currency(code).sub_unit
    except (moneyed.CurrencyDoesNotExist, KeyError, AttributeError):
        raise UnknownCurrency(f"{currency!r} is not an ISO 4217 currency code.") from None
    return len(str(sub_unit)) - 1


def is_currency(code: str) -> bool:
    try:
        minor_digits(code)
    except UnknownCurrency:
        return False
    return True


# -- reading amounts a client sent -------------------------------------------------------

#: At most this many digits before the decimal point in an amount from outside (10^12 - 1
#: is far above any price, and its minor units fit a 64-bit column for every currency).
MAX_INTEGER_DIGITS = 12
#: Unit rates (price per unit of usage) may be finer than the currency's minor unit.
RATE_DECIMALS = 6
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")


class AmountRefused(ValueError):
    """An amount or currency from outside is not in the one accepted shape.

    ``field`` is ``"amount"`` or ``"currency"``; the message is a sentence for the client.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_currency(code: object) -> str:
    """An upper-case ISO 4217 code the system bills in, exactly as sent ("usd" is refused)."""
    if not isinstance(code, str) or not _CURRENCY_CODE.fullmatch(code):
        raise AmountRefused("currency", "The currency is a three-letter upper-case ISO 4217 code, e.g. USD.")
    if not is_currency(code):
        raise AmountRefused("currency", f"{code} is not a currency SubscriptionHub bills in.")
    return code


def parse_amount(text: object, currency: str, *, allow_negative: bool = False, decimals: int | None = None) -> Decimal:
    """The one strict reading of an amount a client sent, as API.md states it.

    A plain decimal string: ASCII digits, at most :data:`MAX_INTEGER_DIGITS` before the
    point, at most ``decimals`` after it (default: the currency's minor digits), a leading
    ``-`` only with ``allow_negative``; no exponent, spaces, ``+``, ``_`` or other digits.
    ``currency`` must already be a valid code (see :func:`parse_currency`).
    """
    places = minor_digits(currency) if decimals is None else decimals
    if isinstance(text, float):
        raise AmountRefused("amount", "Send the amount as a decimal string, not a number, so no precision is lost.")
    if not isinstance(text, str):
        raise AmountRefused("amount", 'The amount is a decimal string, e.g. "49.99".')
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    whole, point, fraction = digits.partition(".")
    if not (_ascii_digits(whole) and (not point or _ascii_digits(fraction))):
        raise AmountRefused(
            "amount",
            "The amount is a plain decimal string of ASCII digits with an optional point "
            '(no exponent, spaces, "+" or "_"), e.g. "49.99".',
        )
    if sign and not allow_negative:
        raise AmountRefused("amount", "The amount must not be negative.")
    if len(whole) > MAX_INTEGER_DIGITS:
        raise AmountRefused("amount", f"The amount has at most {MAX_INTEGER_DIGITS} digits before the point.")
    if len(fraction) > places:
        what = "A unit rate" if decimals is not None else "An amount"
        allowed = f"at most {places} decimals" if places else "no decimals"
        raise AmountRefused("amount", f"{what} in {currency} has {allowed}.")
    return Decimal(text)


def _ascii_digits(part: str) -> bool:
    return bool(part) and part.isascii() and part.isdigit()


def _exponent(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_digits(currency))


def round_half_up(value: Decimal, currency: str) -> Decimal:
    """The one rounding rule of SubscriptionHub: half-up to the minor unit."""
    return value.quantize(_exponent(currency), rounding=ROUND_HALF_UP)


def _to_decimal(value: Decimal | int | str) -> Decimal:
    if isinstance(value, float):
        raise TypeError("Money never takes a float; pass a Decimal, an int or a string.")
    if isinstance(value, bool):
        raise TypeError("Money amount must be a number.")
    try:
        result = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{value!r} is not a decimal amount.") from None
    if not result.is_finite():
        raise ValueError(f"{value!r} is not a finite amount.")
    return result


@dataclass(frozen=True, slots=True, init=False, repr=False, eq=False)
class _AmountInCurrency:
    """What Money and UnitRate share: an amount in a currency, written to and read from one JSON
    shape (so a rate stored as Money reads back as a rate), and shown the same way. Each checks
    its own amount in ``__init__``."""

    #: The value's name in the error about a JSON value of the wrong shape.
    _called: ClassVar[str]

    amount: Decimal
    currency: str

    @classmethod
    def from_json(cls, data: dict) -> Self:
        if not isinstance(data, dict) or set(data) - {"amount", "currency"} or "amount" not in data:
            raise ValueError(f'{cls._called} is {{"amount": "<decimal string>", "currency": "<ISO 4217>"}}.')
        return cls(data["amount"], data.get("currency", ""))

    def to_json(self) -> dict:
        return {"amount": f"{self.amount:f}", "currency": self.currency}

    def __str__(self) -> str:
        return f"{self.amount:,f} {self.currency}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.amount:f}', '{self.currency}')"


@dataclass(frozen=True, slots=True, repr=False)
class Money(_AmountInCurrency):
    """An exact amount in one currency, always at the currency's minor precision.

    ``Money("49.99", "USD")`` is fine; ``Money("49.999", "USD")`` raises — use
    :meth:`rounded` when a computation produces more digits.
    """

    _called = "Money"

    def __init__(self, amount: Decimal | int | str, currency: str) -> None:
        code = (currency or "").upper()
        exponent = _exponent(code)
        value = _to_decimal(amount)
        quantized = value.quantize(exponent)
        if quantized != value:
            raise ValueError(
                f"{value} has more decimals than {code} allows ({minor_digits(code)}); use Money.rounded()."
            )
        object.__setattr__(self, "amount", quantized)
        object.__setattr__(self, "currency", code)

    # -- construction -------------------------------------------------------
    @classmethod
    def parse(cls, amount: object, currency: object, *, allow_negative: bool = False) -> Money:
        """Money from a client's ``amount`` and ``currency``, read strictly (:func:`parse_amount`)."""
        code = parse_currency(currency)
        return cls(parse_amount(amount, code, allow_negative=allow_negative), code)

    @classmethod
    def rounded(cls, amount: Decimal | int | str, currency: str) -> Money:
        return cls(round_half_up(_to_decimal(amount), currency.upper()), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        if not isinstance(minor, int) or isinstance(minor, bool):
            raise TypeError("Minor units are an integer.")
        return cls(Decimal(minor).scaleb(-minor_digits(currency)), currency)

    # -- representation (JSON, str and repr: _AmountInCurrency) -------------
    @property
    def minor_units(self) -> int:
        return int(self.amount.scaleb(minor_digits(self.currency)))

    # -- arithmetic ---------------------------------------------------------
    def _check(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"Cannot combine Money with {type(other).__name__}.")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"Cannot combine {self.currency} with {other.currency}.")
        return other

    def __add__(self, other: Money) -> Money:
        other = self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        other = self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._check(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._check(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._check(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._check(other).amount

    def times(self, factor: Decimal | int | str) -> Money:
        """Multiply by an exact factor, rounding the result half-up."""
        return Money.rounded(self.amount * _to_decimal(factor), self.currency)

    def is_zero(self) -> bool:
        return self.amount == 0

    def is_positive(self) -> bool:
        return self.amount > 0

    def is_negative(self) -> bool:
        return self.amount < 0

    @staticmethod
    def total(amounts, currency: str) -> Money:
        """Sum of amounts that must all be in ``currency`` (zero when empty)."""
        result = Money.zero(currency)
        for amount in amounts:
            result = result + amount
        return result


def money_from_minor(minor: str, *, currency: str = "currency", optional: bool = False) -> property:
    """A read-only property that reads an amount stored the way money is stored (an integer of the
    currency's minor units, attribute ``minor``) as Money in the currency at ``currency``, a dotted path
    for a row that keeps none of its own (``"invoice.currency"``).

    ``optional``: the amount may be absent (a nullable column) and then reads as None.
    """
    minor_of, currency_of = attrgetter(minor), attrgetter(currency)

    def read(row: object) -> Money | None:
        units = minor_of(row)
        if units is None and optional:
            return None
        return Money.from_minor(units, currency_of(row))

    return property(read, doc=f"``{minor}`` as Money.")


#: Enough significant digits that quantity × rate is exact for any whole quantity below 10^40.
_CHARGE_PRECISION = 60


@dataclass(frozen=True, slots=True, repr=False)
class UnitRate(_AmountInCurrency):
    """A price per unit of usage: exact, non-negative, at most :data:`RATE_DECIMALS` decimals.

    ``UnitRate("0.000125", "USD")`` is fine; ``UnitRate("0.0000001", "USD")`` raises. The amount
    is kept with as many decimals as it needs but at least the currency's minor digits, so
    JSON shows ``"0.000125"``, ``"0.01"`` and ``"5.00"`` (never ``"0.010000"`` or ``"5"``).
    JSON is the shape of Money, so rates stored as Money before read as rates unchanged.
    """

    _called = "A unit rate"

    def __init__(self, amount: Decimal | int | str, currency: str) -> None:
        code = (currency or "").upper()
        places = minor_digits(code)
        value = _to_decimal(amount)
        if value < 0:
            raise ValueError(f"A unit rate cannot be negative ({value}).")
        value = value if value else Decimal(0)  # "-0" is zero
        if value.quantize(_RATE_EXPONENT) != value:
            raise ValueError(f"A unit rate has at most {RATE_DECIMALS} decimals ({value}).")
        if value >= _RATE_LIMIT:
            raise ValueError(f"A unit rate has at most {MAX_INTEGER_DIGITS} digits before the point ({value}).")
        exponent = min(value.normalize().as_tuple().exponent, -places)
        object.__setattr__(self, "amount", value.quantize(Decimal(1).scaleb(exponent)))
        object.__setattr__(self, "currency", code)

    # -- construction -------------------------------------------------------
    @classmethod
    def parse(cls, amount: object, currency: object) -> UnitRate:
        """A rate from a client's ``amount`` and ``currency``, read strictly (:func:`parse_amount`)."""
        code = parse_currency(currency)
        return cls(parse_amount(amount, code, decimals=RATE_DECIMALS), code)

    @classmethod
    def of(cls, value: UnitRate | Money) -> UnitRate:
        """A rate from a rate or from Money (any Money is an exact rate: minor digits ≤ 6)."""
        if isinstance(value, UnitRate):
            return value
        if isinstance(value, Money):
            return cls(value.amount, value.currency)
        raise TypeError(f"A unit rate is a UnitRate or Money, not {type(value).__name__}.")

    # -- arithmetic ---------------------------------------------------------
    def charge(self, quantity: int) -> Money:
        """What ``quantity`` units cost: quantity × rate, exact, rounded half-up once for the line."""
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise TypeError("A charged quantity is a whole number.")
        with localcontext() as ctx:
            ctx.prec = _CHARGE_PRECISION
            return Money.rounded(self.amount * quantity, self.currency)

    def is_zero(self) -> bool:
        return self.amount == 0


_RATE_EXPONENT = Decimal(1).scaleb(-RATE_DECIMALS)
_RATE_LIMIT = Decimal(10) ** MAX_INTEGER_DIGITS


@dataclass(frozen=True, slots=True)
class EmailAddress:
    """A syntactically valid e-mail address, domain normalised to lower case."""

    value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("An e-mail address is required.")
        try:
            normalized = validate_email(value.strip(), check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"{value!r} is not a valid e-mail address: {exc}") from None
        object.__setattr__(self, "value", normalized)

    def __str__(self) -> str:
        return self.value

    @property
    def domain(self) -> str:
        return self.value.rsplit("@", 1)[1]
