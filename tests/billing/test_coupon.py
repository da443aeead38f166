"""Coupon and Discount aggregates: redeem() checks every coupon rule and records CouponRedeemed on the
customer's account; consume() gives an invoice its discount line and counts a limited one down."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from billing.models import BilledSubscription, BillingAccount, Coupon, CouponNotApplicable, CurrencyMismatch, Discount
from billing.values import LineKind
from sharedkernel.errors import InvalidTransition
from sharedkernel.values import Money
from tests.conftest import at

T0 = at("2030-03-01 00:00")


def coupon(**fields) -> Coupon:
    defaults = {"code": "WELCOME20", "name": "Welcome", "percent_off": Decimal("20"), "duration": "once"}
    return Coupon(**{**defaults, **fields})


def subscription(status="active", currency="USD") -> BilledSubscription:
    return BilledSubscription(
        subscription_id=uuid.uuid4(), customer_id=uuid.uuid4(), status=status, currency=currency, price_minor=5000
    )


def account(sub: BilledSubscription) -> BillingAccount:
    return BillingAccount(customer_id=sub.customer_id, name="Ada", email="ada@example.com", currency="USD")


def redeem(c: Coupon, sub: BilledSubscription | None = None, *, already_discounted=False, when=T0):
    sub = sub or subscription()
    acc = account(sub)
    return c.redeem(subscription=sub, account=acc, already_discounted=already_discounted, at=when), acc


def test_redeeming_counts_the_redemption_and_records_coupon_redeemed_on_the_account():
    # given a percent coupon for three periods
    c = coupon(duration="repeating", duration_in_periods=3, max_redemptions=5, times_redeemed=4)
    sub = subscription()
    # when it is redeemed
    discount, acc = redeem(c, sub)
    # then the discount runs for three periods, the coupon counts it, and the account records the event
    assert (discount.subscription_id, discount.customer_id) == (sub.subscription_id, sub.customer_id)
    assert discount.periods_remaining == 3 and discount.redeemed_at == T0 and discount.coupon is c
    assert c.times_redeemed == 5
    [event] = acc.recorded_events
    assert event.event_type == "billing.CouponRedeemed" and event.aggregate_type == "BillingAccount"
    assert event.customer_id == str(sub.customer_id) and event.subscription_id == str(sub.subscription_id)
    assert (event.coupon_code, event.duration, event.duration_in_periods) == ("WELCOME20", "repeating", 3)
    assert event.percent_off == Decimal("20") and event.amount_off is None


@pytest.mark.parametrize(("duration", "periods"), [("once", 1), ("forever", None)])
def test_once_runs_one_period_and_forever_never_runs_out(duration, periods):
    discount, _ = redeem(coupon(duration=duration))
    assert discount.periods_remaining == periods


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"active": False}, "is not valid"),
        ({"redeem_by": at("2030-02-28 00:00")}, "is not valid"),
        ({"max_redemptions": 2, "times_redeemed": 2}, "has been used up"),
    ],
)
def test_an_inactive_expired_or_used_up_coupon_is_refused(fields, message):
    c = coupon(**fields)
    with pytest.raises(CouponNotApplicable, match=message):
        redeem(c)
    assert c.times_redeemed == fields.get("times_redeemed", 0)


def test_a_cancelled_subscription_takes_no_coupon():
    with pytest.raises(InvalidTransition, match="cancelled subscription"):
        redeem(coupon(), subscription(status="cancelled"))


def test_one_coupon_per_subscription():
    with pytest.raises(CouponNotApplicable, match="already has a coupon"):
        redeem(coupon(), already_discounted=True)


def test_an_amount_off_is_redeemed_only_in_its_currency():
    c = coupon(percent_off=None, amount_off_minor=500, currency="EUR")
    with pytest.raises(CurrencyMismatch, match="is for EUR"):
        redeem(c, subscription(currency="USD"))
    discount, acc = redeem(c, subscription(currency="EUR"))
    assert acc.recorded_events[0].amount_off == Money("5.00", "EUR")


def test_consuming_a_limited_discount_counts_it_down_until_it_is_exhausted():
    # given a discount with two periods left
    discount = Discount(coupon=coupon(), periods_remaining=2)
    # when two invoices consume it
    first, second = discount.consume(Money("50.00", "USD")), discount.consume(Money("50.00", "USD"))
    # then both carry 20 % off and the third gets nothing
    assert first.kind == LineKind.DISCOUNT and first.amount == Money("-10.00", "USD")
    assert second == first and discount.exhausted
    assert discount.consume(Money("50.00", "USD")) is None and discount.periods_remaining == 0


def test_a_forever_discount_is_never_counted_down():
    discount = Discount(coupon=coupon(duration="forever"), periods_remaining=None)
    assert discount.consume(Money("50.00", "USD")).amount == Money("-10.00", "USD")
    assert discount.periods_remaining is None and not discount.limited


def test_nothing_off_consumes_nothing():
    # an amount off in another currency, or nothing positive to discount, leaves the periods alone
    discount = Discount(coupon=coupon(percent_off=None, amount_off_minor=500, currency="EUR"), periods_remaining=1)
    assert discount.consume(Money("50.00", "USD")) is None
    assert discount.consume(Money("0.00", "EUR")) is None and discount.periods_remaining == 1


def test_the_preview_line_is_the_consumed_line_without_counting_down():
    discount = Discount(coupon=coupon(), periods_remaining=1)
    assert discount.line_on(Money("50.00", "USD")) == discount.consume(Money("50.00", "USD"))
    assert discount.periods_remaining == 0 and discount.line_on(Money("50.00", "USD")) is None
