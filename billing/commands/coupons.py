"""RedeemCoupon: load the coupon, let it redeem itself, save."""

from __future__ import annotations

from billing import events as ev
from billing.commands.accounts import load_account
from billing.commands.unit_of_work import UnitOfWork
from billing.models import (
    BilledSubscription,
    Coupon,
    CurrencyMismatch,
    Discount,
)
from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import current_cause
from sharedkernel.errors import DomainError, InvalidInput, InvalidTransition, NotFound


class CouponNotApplicable(DomainError):
    code = "coupon_not_applicable"


# -- coupons ---------------------------------------------------------------------------


@command(aggregate="BillingAccount", records=("billing.CouponRedeemed",))
def apply_coupon(*, subscription_id: str, code: str, clock: Clock | None = None) -> Discount:
    """RedeemCoupon: one coupon per subscription, within the coupon's limits."""
    code = (code or "").strip().upper()
    if not code:
        raise InvalidInput("Enter a coupon code.", details={"code": "required"})
    sub = BilledSubscription.objects.filter(pk=subscription_id).first()
    if sub is None:
        raise NotFound("No such subscription.")
    coupon = Coupon.objects.select_for_update().filter(pk=code).first()
    at = (clock or clock_for(sub.test_clock_id)).now()
    if coupon is None or not coupon.active or (coupon.redeem_by and coupon.redeem_by < at):
        raise CouponNotApplicable(f"The coupon {code} is not valid.")
    if coupon.max_redemptions is not None and coupon.times_redeemed >= coupon.max_redemptions:
        raise CouponNotApplicable(f"The coupon {code} has been used up.")
    if not sub.live:
        raise InvalidTransition("A cancelled subscription cannot take a coupon.")
    if Discount.objects.filter(pk=sub.subscription_id).exists():
        raise CouponNotApplicable("This subscription already has a coupon.")
    if coupon.amount_off is not None and coupon.currency != sub.currency:
        raise CurrencyMismatch(
            f"The coupon {code} is for {coupon.currency}; this subscription is billed in {sub.currency}."
        )
    account = load_account(sub.customer_id, lock=True)
    periods = {"once": 1, "repeating": coupon.duration_in_periods, "forever": None}[coupon.duration]
    discount = Discount.objects.create(
        subscription_id=sub.subscription_id,
        customer_id=sub.customer_id,
        coupon=coupon,
        periods_remaining=periods,
        redeemed_at=at,
    )
    coupon.times_redeemed += 1
    coupon.save(update_fields=["times_redeemed"])
    account.record(
        ev.CouponRedeemed(
            customer_id=str(account.customer_id),
            subscription_id=str(sub.subscription_id),
            coupon_code=coupon.code,
            duration=coupon.duration,
            duration_in_periods=coupon.duration_in_periods,
            percent_off=coupon.percent_off,
            amount_off=coupon.amount_off,
        ),
        at=at,
    )
    uow = UnitOfWork()
    uow.touch(account, current_cause())
    uow.commit()
    return discount
