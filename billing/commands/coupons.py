"""RedeemCoupon: load the coupon, the subscription and the account, let the coupon redeem itself, save."""

from __future__ import annotations

from billing.commands.accounts import load_account
from billing.commands.unit_of_work import UnitOfWork
from billing.models import BilledSubscription, Coupon, CouponNotApplicable, Discount
from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import current_cause
from sharedkernel.errors import InvalidInput, NotFound


@command(aggregate="BillingAccount", records=("billing.CouponRedeemed",))
def apply_coupon(*, subscription_id: str, code: str, clock: Clock | None = None) -> Discount:
    """RedeemCoupon: one coupon per subscription, within the coupon's limits (:meth:`Coupon.redeem`).

    Records billing.CouponRedeemed on the customer's BillingAccount."""
    code = (code or "").strip().upper()
    if not code:
        raise InvalidInput("Enter a coupon code.", details={"code": "required"})
    sub = BilledSubscription.objects.filter(pk=subscription_id).first()
    if sub is None:
        raise NotFound("No such subscription.")
    coupon = Coupon.objects.select_for_update().filter(pk=code).first()
    if coupon is None:
        raise CouponNotApplicable(f"The coupon {code} is not valid.")
    at = (clock or clock_for(sub.test_clock_id)).now()
    account = load_account(sub.customer_id, lock=True)
    discount = coupon.redeem(
        subscription=sub,
        account=account,
        already_discounted=Discount.objects.filter(pk=sub.subscription_id).exists(),
        at=at,
    )
    discount.save(force_insert=True)
    coupon.save(update_fields=["times_redeemed"])
    uow = UnitOfWork()
    uow.touch(account, current_cause())
    uow.commit()
    return discount
