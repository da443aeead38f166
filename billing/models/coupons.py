"""Coupon (a discount code staff define) and Discount (a coupon redeemed on a subscription).

A coupon checks its own rules when it is redeemed (:meth:`Coupon.redeem`); a discount counts
down the periods it applies to when an invoice consumes it (:meth:`Discount.consume`). The
CouponRedeemed event is recorded on the customer's BillingAccount, as it always was.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models

from billing import events as ev
from billing.models.accounts import BilledSubscription, BillingAccount, CurrencyMismatch
from billing.values import LineDraft, LineKind
from sharedkernel.errors import DomainError, InvalidTransition
from sharedkernel.values import Money, money_from_minor


class CouponNotApplicable(DomainError):
    code = "coupon_not_applicable"


class Coupon(models.Model):
    """A discount code. Percent or a fixed amount (in one currency); once, for N periods, or forever."""

    class Duration(models.TextChoices):
        ONCE = "once", "Once (the next invoice)"
        REPEATING = "repeating", "For a number of periods"
        FOREVER = "forever"

    code = models.CharField(max_length=40, primary_key=True, help_text="What customers type, e.g. WELCOME20")
    name = models.CharField(max_length=100)
    percent_off = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    amount_off_minor = models.BigIntegerField(null=True, blank=True, help_text="In minor units of the currency")
    currency = models.CharField(max_length=3, blank=True, help_text="For an amount off")
    duration = models.CharField(max_length=10, choices=Duration.choices, default=Duration.ONCE)
    duration_in_periods = models.PositiveIntegerField(null=True, blank=True)
    max_redemptions = models.PositiveIntegerField(null=True, blank=True)
    times_redeemed = models.PositiveIntegerField(default=0, editable=False)
    redeem_by = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(percent_off__isnull=False, amount_off_minor__isnull=True)
                    | models.Q(percent_off__isnull=True, amount_off_minor__isnull=False)
                ),
                name="coupon_percent_xor_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.describe()})"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        self.code = self.code.strip().upper()
        if (self.percent_off is None) == (self.amount_off_minor is None):
            raise ValidationError("Give either a percentage or an amount off, not both.")
        if self.percent_off is not None and not 0 < self.percent_off <= 100:
            raise ValidationError({"percent_off": "Between 0 and 100."})
        if self.amount_off_minor is not None and (self.amount_off_minor <= 0 or not self.currency):
            raise ValidationError({"currency": "An amount off is positive and needs its currency."})
        if self.duration == self.Duration.REPEATING and not self.duration_in_periods:
            raise ValidationError({"duration_in_periods": "Say for how many periods."})

    amount_off = money_from_minor("amount_off_minor", optional=True)

    def describe(self) -> str:
        off = f"{self.percent_off.normalize():f} % off" if self.percent_off is not None else f"{self.amount_off} off"
        if self.duration == self.Duration.REPEATING:
            return f"{off} for {self.duration_in_periods} periods"
        return f"{off} {'once' if self.duration == self.Duration.ONCE else 'forever'}"

    def redeem(
        self, *, subscription: BilledSubscription, account: BillingAccount, already_discounted: bool, at: datetime
    ) -> Discount:
        """RedeemCoupon's rules: the coupon is active and not past its redeem-by time, not used up,
        the subscription is live and has no coupon yet, and an amount off is in the subscription's
        currency. Counts the redemption, returns the (unsaved) Discount and records CouponRedeemed
        on the customer's billing account (where its events have always been)."""
        if not self.active or (self.redeem_by and self.redeem_by < at):
            raise CouponNotApplicable(f"The coupon {self.code} is not valid.")
        if self.max_redemptions is not None and self.times_redeemed >= self.max_redemptions:
            raise CouponNotApplicable(f"The coupon {self.code} has been used up.")
        if not subscription.live:
            raise InvalidTransition("A cancelled subscription cannot take a coupon.")
        if already_discounted:
            raise CouponNotApplicable("This subscription already has a coupon.")
        if self.amount_off is not None and self.currency != subscription.currency:
            raise CurrencyMismatch(
                f"The coupon {self.code} is for {self.currency}; this subscription is billed in {subscription.currency}."
            )
        periods = {"once": 1, "repeating": self.duration_in_periods, "forever": None}[self.duration]
        self.times_redeemed += 1
        account.record(
            ev.CouponRedeemed(
                customer_id=str(account.customer_id),
                subscription_id=str(subscription.subscription_id),
                coupon_code=self.code,
                duration=self.duration,
                duration_in_periods=self.duration_in_periods,
                percent_off=self.percent_off,
                amount_off=self.amount_off,
            ),
            at=at,
        )
        return Discount(
            subscription_id=subscription.subscription_id,
            customer_id=subscription.customer_id,
            coupon=self,
            periods_remaining=periods,
            redeemed_at=at,
        )

    def discount_on(self, amount: Money) -> Money:
        """The (negative) discount on ``amount``, rounded half-up; never more than the amount."""
        if not amount.is_positive():
            return Money.zero(amount.currency)
        if self.percent_off is not None:
            off = Money.rounded(amount.amount * self.percent_off / 100, amount.currency)
        elif self.currency == amount.currency:
            off = self.amount_off
        else:
            return Money.zero(amount.currency)
        return -min(off, amount)


class Discount(models.Model):
    """A coupon redeemed on a subscription; applied to its recurring invoices."""

    subscription_id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="discounts")
    #: None: forever; otherwise how many more invoices it applies to.
    periods_remaining = models.PositiveIntegerField(null=True, blank=True)
    redeemed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.coupon_id} on {self.subscription_id}"

    @property
    def exhausted(self) -> bool:
        return self.periods_remaining == 0

    @property
    def limited(self) -> bool:
        """It runs out (once or repeating): each consumed period counts down."""
        return self.periods_remaining is not None

    def line_on(self, plan_total: Money) -> LineDraft | None:
        """The discount line on an invoice whose plan lines total ``plan_total``, or None when
        there is nothing off (run out, nothing positive to discount, another currency)."""
        if self.exhausted:
            return None
        off = self.coupon.discount_on(plan_total)
        if not off.is_negative():
            return None
        return LineDraft(LineKind.DISCOUNT, f"{self.coupon.name} ({self.coupon.describe()})", off)

    def consume(self, plan_total: Money) -> LineDraft | None:
        """One recurring invoice takes the discount: its line (as :meth:`line_on`), and a limited
        discount has one period fewer left. Nothing off consumes nothing."""
        line = self.line_on(plan_total)
        if line is not None and self.limited:
            self.periods_remaining -= 1
        return line
