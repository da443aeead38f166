"""Aggregates of the Subscriptions context: Customer, Plan and Subscription.

State changes only through the methods below; each checks its invariant,
changes state and records the events. Commands (commands.py) load, call,
save and publish.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models

from sharedkernel.aggregates import AggregateRoot
from sharedkernel.errors import InvalidInput, InvalidTransition
from sharedkernel.models import TestClock
from sharedkernel.values import MAX_INTEGER_DIGITS, RATE_DECIMALS, EmailAddress, Money, UnitRate, minor_digits
from subscriptions import events as ev
from subscriptions.rules import (
    AlreadySubscribed,
    CurrencyNotOffered,
    NoPendingPlanChange,
    PlanChangeDecision,
    PlanChangePolicy,
    PlanOption,
    PlanUnavailable,
    TrialNotAvailable,
)
from subscriptions.values import MAX_QUANTITY, BillingInterval, PlanTier, SubscriptionPeriod, TrialDuration

# -- customers ---------------------------------------------------------------------


class Customer(AggregateRoot):
    """Who subscribes: identity and registration details.

    Billing keeps the billing address and payment method; Notifications keeps
    the e-mail for sending. They learn them from CustomerRegistered.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254)
    currency = models.CharField(max_length=3, help_text="Preferred currency for new subscriptions.")
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2.")
    region = models.CharField(max_length=10, blank=True, help_text="State or province code.")
    tax_exempt = models.BooleanField(default=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="customer"
    )
    test_clock = models.ForeignKey(TestClock, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    #: Learnt from billing.PaymentMethodUpdated; decides what happens when a trial ends.
    has_payment_method = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @classmethod
    def register(
        cls,
        *,
        name: str,
        email: str,
        currency: str,
        country: str,
        region: str = "",
        tax_exempt: bool = False,
        user=None,
        test_clock: TestClock | None = None,
        at: datetime,
    ) -> Customer:
        name = (name or "").strip()
        if not name:
            raise InvalidInput("A customer needs a name.", details={"name": "required"})
        try:
            address = EmailAddress(email)
        except ValueError as exc:
            raise InvalidInput(str(exc), details={"email": "invalid"}) from None
        currency = (currency or "").upper()
        minor_digits(currency)  # raises UnknownCurrency for anything not billable
        country = (country or "").upper()
        if len(country) != 2 or not country.isalpha():
            raise InvalidInput("Country is an ISO 3166-1 alpha-2 code, e.g. US.", details={"country": "invalid"})
        customer = cls(
            id=uuid.uuid4(),
            name=name,
            email=address.value,
            currency=currency,
            country=country,
            region=(region or "").upper(),
            tax_exempt=tax_exempt,
            user=user,
            test_clock=test_clock,
            created_at=at,
        )
        customer.record(
            ev.CustomerRegistered(
                customer_id=str(customer.id),
                name=customer.name,
                email=address,
                currency=currency,
                country=country,
                region=customer.region,
                tax_exempt=tax_exempt,
                test_clock_id=str(test_clock.pk) if test_clock else None,
                user_id=user.pk if user else None,
            ),
            at=at,
        )
        return customer

    def note_payment_method(self, *, present: bool) -> None:
        """Billing told us whether a payment method is on file (no event: it is Billing's fact)."""
        self.has_payment_method = present


class SignupProfile(models.Model):
    """What a person typed at sign-up, kept until their e-mail is verified."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signup_profile")
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    country = models.CharField(max_length=2)
    region = models.CharField(max_length=10, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.country}, {self.currency})"


# -- plans -------------------------------------------------------------------------


class Plan(AggregateRoot):
    """Reference data: what can be bought, at which prices, with what included."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    tier = models.CharField(max_length=20, choices=[(t.value, t.value.title()) for t in PlanTier])
    interval = models.CharField(max_length=5, choices=[(i.value, i.value) for i in BillingInterval])
    trial_days = models.PositiveSmallIntegerField(default=0)
    features = models.JSONField(default=list, blank=True)
    included_usage = models.JSONField(default=dict, blank=True, help_text="metric → quantity included per period")
    archived = models.BooleanField(default=False, editable=False)
    #: The version new subscriptions get (its terms: PlanVersion; the rows above mirror them).
    current_version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(editable=False)
    test_clock_attribute = None  # plans are catalogue data, not on any clock

    class Meta:
        ordering = ["tier", "interval", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.interval}ly)"

    # -- reading -------------------------------------------------------------------
    @property
    def plan_tier(self) -> PlanTier:
        return PlanTier(self.tier)

    @property
    def billing_interval(self) -> BillingInterval:
        return BillingInterval(self.interval)

    def _staged(self, name: str):
        return self.__dict__.get(name)

    @property
    def prices(self) -> list[Money]:
        staged = self._staged("_staged_prices")
        if staged is not None:
            return staged
        return [Money.from_minor(p.amount_minor, p.currency) for p in self.price_rows.all()]

    @property
    def overage_rates(self) -> dict[str, list[UnitRate]]:
        staged = self._staged("_staged_rates")
        if staged is not None:
            return staged
        rates: dict[str, list[UnitRate]] = {}
        for row in self.overage_rows.all():
            rates.setdefault(row.metric, []).append(row.rate)
        return rates

    def price_in(self, currency: str) -> Money | None:
        return next((p for p in self.prices if p.currency == currency.upper()), None)

    def ref(self, version: int | None = None) -> ev.PlanRef:
        return ev.PlanRef(
            id=str(self.id),
            code=self.code,
            name=self.name,
            tier=self.tier,
            interval=self.interval,
            version=version or self.current_version,
        )

    def option(self, currency: str) -> PlanOption:
        price = self.price_in(currency)
        if price is None:
            raise CurrencyNotOffered(
                f"The {self.name} plan is not sold in {currency}.",
                details={"currency": currency, "offered": [p.currency for p in self.prices]},
            )
        return PlanOption(str(self.id), self.plan_tier, self.billing_interval, price)

    # -- behaviour -------------------------------------------------------------------
    @classmethod
    def define(
        cls,
        *,
        code: str,
        name: str,
        tier: str,
        interval: str,
        trial_days: int,
        prices: list[Money],
        features: list[str] | None = None,
        included_usage: dict[str, int] | None = None,
        overage_rates: dict[str, list[UnitRate | Money]] | None = None,
        at: datetime,
    ) -> Plan:
        plan = cls(id=uuid.uuid4(), code=code, created_at=at, current_version=1)
        plan._apply(
            name=name,
            tier=tier,
            interval=interval,
            trial_days=trial_days,
            prices=prices,
            features=features or [],
            included_usage=included_usage or {},
            overage_rates=overage_rates or {},
        )
        plan.__dict__["_staged_version_at"] = at
        plan.record(ev.PlanCreated(**plan._snapshot(), current_from=at), at=at)
        return plan

    def revise(
        self,
        *,
        name: str,
        trial_days: int,
        prices: list[Money],
        features: list[str],
        included_usage: dict[str, int],
        overage_rates: dict[str, list[UnitRate | Money]],
        at: datetime,
    ) -> None:
        """A new version (current_version + 1) with complete new terms, current for new
        subscriptions from ``at``. Existing subscriptions stay on their version and price
        until a price migration moves them."""
        self._apply(
            name=name,
            tier=self.tier,
            interval=self.interval,
            trial_days=trial_days,
            prices=prices,
            features=features,
            included_usage=included_usage,
            overage_rates=overage_rates,
        )
        self.current_version += 1
        self.__dict__["_staged_version_at"] = at
        self.record(ev.PlanUpdated(**self._snapshot(), current_from=at), at=at)

    def archive(self, *, at: datetime) -> None:
        if self.archived:
            raise InvalidTransition(f"The {self.name} plan is already archived.")
        self.archived = True
        self.record(ev.PlanArchived(plan_id=str(self.id), code=self.code), at=at)

    def restore(self, *, at: datetime) -> None:
        if not self.archived:
            raise InvalidTransition(f"The {self.name} plan is not archived.")
        self.archived = False
        self.record(ev.PlanRestored(plan_id=str(self.id), code=self.code), at=at)

    def _apply(self, *, name, tier, interval, trial_days, prices, features, included_usage, overage_rates) -> None:
        problems: dict[str, str] = {}
        if not (name or "").strip():
            problems["name"] = "A plan needs a name."
        if tier not in PlanTier.__members__.values():
            problems["tier"] = "One of basic, professional, enterprise."
        if interval not in BillingInterval.__members__.values():
            problems["interval"] = "One of month, year."
        try:
            TrialDuration(int(trial_days))
        except (TypeError, ValueError):
            problems["trial_days"] = "Between 0 and 365 days."
        currencies = [p.currency for p in prices]
        if not prices:
            problems["prices"] = "A plan needs at least one price."
        elif len(set(currencies)) != len(currencies):
            problems["prices"] = "One price per currency."
        elif any(p.is_negative() for p in prices):
            problems["prices"] = "Prices cannot be negative."
        if not all(isinstance(f, str) and f.strip() for f in features):
            problems["features"] = "Features are non-empty strings."
        for metric, quantity in included_usage.items():
            if not metric.replace("_", "").isalnum() or not isinstance(quantity, int) or quantity < 0:
                problems["included_usage"] = "metric_name → non-negative whole quantity."
            elif quantity > MAX_QUANTITY:
                problems["included_usage"] = f"{metric!r}: at most {MAX_QUANTITY:,} included per period."
        try:  # a rate given as Money (minor digits ≤ 6) is an exact unit rate
            overage_rates = {metric: [UnitRate.of(r) for r in rates] for metric, rates in overage_rates.items()}
        except (TypeError, ValueError) as exc:
            problems["overage_rates"] = str(exc)
            overage_rates = {}
        for metric, rates in overage_rates.items():
            if metric not in included_usage:
                problems["overage_rates"] = f"{metric!r} has an overage rate but no included quantity."
            elif sorted(r.currency for r in rates) != sorted(set(currencies)):
                problems["overage_rates"] = (
                    f"{metric!r} needs exactly one rate in each price currency {sorted(currencies)}."
                )
        if problems:
            raise InvalidInput("The plan is not valid.", details=problems)
        self.name = name.strip()
        self.tier = tier
        self.interval = interval
        self.trial_days = int(trial_days)
        self.features = [f.strip() for f in features]
        self.included_usage = dict(included_usage)
        self.__dict__["_staged_prices"] = list(prices)
        self.__dict__["_staged_rates"] = {metric: list(rates) for metric, rates in overage_rates.items()}

    def _snapshot(self) -> dict:
        return dict(
            plan_id=str(self.id),
            code=self.code,
            name=self.name,
            tier=self.tier,
            interval=self.interval,
            trial_days=self.trial_days,
            prices=self.prices,
            features=list(self.features),
            included_usage=dict(self.included_usage),
            overage_rates=self.overage_rates,
            version=self.current_version,
        )

    def staged_version(self) -> PlanVersion | None:
        """The version row define/revise made, not yet written."""
        at = self.__dict__.pop("_staged_version_at", None)
        if at is None:
            return None
        return PlanVersion.of_terms(
            plan=self,
            version=self.current_version,
            prices=self.prices,
            included_usage=self.included_usage,
            overage_rates=self.overage_rates,
            trial_days=self.trial_days,
            features=self.features,
            current_from=at,
        )

    def staged_children(self) -> tuple[list[Money], dict[str, list[UnitRate]]] | None:
        """Prices and rates set by define/revise and not yet written."""
        prices = self.__dict__.pop("_staged_prices", None)
        rates = self.__dict__.pop("_staged_rates", None)
        return None if prices is None else (prices, rates or {})


class PlanPrice(models.Model):
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="price_rows")
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField(help_text="In the currency's minor unit (cents).")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "currency"], name="one_price_per_currency")]

    def __str__(self) -> str:
        return str(Money.from_minor(self.amount_minor, self.currency))


class PlanVersion(models.Model):
    """One version of a plan's terms, as it became current. Written once, never changed:
    subscriptions billed on it keep these terms (grandfathered) until a price migration moves them.
    Money is stored as its JSON form (exact decimal strings)."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    prices = models.JSONField(default=list, help_text='[{"amount": "49.00", "currency": "USD"}]')
    included_usage = models.JSONField(default=dict, blank=True)
    overage_rates = models.JSONField(default=dict, blank=True, help_text="metric → [unit rate] (up to 6 decimals)")
    trial_days = models.PositiveSmallIntegerField(default=0)
    features = models.JSONField(default=list, blank=True)
    current_from = models.DateTimeField()

    class Meta:
        ordering = ["plan", "version"]
        constraints = [models.UniqueConstraint(fields=["plan", "version"], name="one_row_per_plan_version")]

    def __str__(self) -> str:
        return f"{self.plan.name} v{self.version}"

    @classmethod
    def of_terms(
        cls, *, plan, version, prices, included_usage, overage_rates, trial_days, features, current_from
    ) -> PlanVersion:
        return cls(
            plan=plan,
            version=version,
            prices=[p.to_json() for p in prices],
            included_usage=dict(included_usage),
            overage_rates={metric: [r.to_json() for r in rates] for metric, rates in overage_rates.items()},
            trial_days=trial_days,
            features=list(features),
            current_from=current_from,
        )

    @property
    def money_prices(self) -> list[Money]:
        return [Money.from_json(p) for p in self.prices]

    @property
    def unit_overage_rates(self) -> dict[str, list[UnitRate]]:
        return {metric: [UnitRate.from_json(r) for r in rates] for metric, rates in self.overage_rates.items()}

    def price_in(self, currency: str) -> Money | None:
        return next((p for p in self.money_prices if p.currency == currency.upper()), None)


class PlanOverageRate(models.Model):
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="overage_rows")
    metric = models.CharField(max_length=50)
    currency = models.CharField(max_length=3)
    #: Exact, up to RATE_DECIMALS decimals and MAX_INTEGER_DIGITS before the point (sharedkernel.values.UnitRate).
    amount = models.DecimalField(
        max_digits=MAX_INTEGER_DIGITS + RATE_DECIMALS,
        decimal_places=RATE_DECIMALS,
        help_text="Price per unit over the included quantity, up to 6 decimals.",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["plan", "metric", "currency"], name="one_rate_per_metric")]

    def __str__(self) -> str:
        return f"{self.metric}: {self.rate} per unit"

    @property
    def rate(self) -> UnitRate:
        return UnitRate(self.amount, self.currency)


# -- subscriptions -----------------------------------------------------------------


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    PENDING_PAYMENT = "pending_payment", "Pending payment"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    CANCELLED = "cancelled", "Cancelled"


LIVE_STATUSES = (
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.PENDING_PAYMENT,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.SUSPENDED,
)


class SuspensionReason(models.TextChoices):
    NON_PAYMENT = "non_payment", "Payment failed"
    NO_PAYMENT_METHOD = "no_payment_method", "Trial ended without a payment method"
    STAFF = "staff", "Paused by staff"


class ResumeInitiator(models.TextChoices):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"  # a payment succeeded, a payment method arrived


class Subscription(AggregateRoot):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    currency = models.CharField(max_length=3)
    price_minor = models.BigIntegerField(help_text="Price per period the customer bought, minor units.")
    interval = models.CharField(max_length=5, choices=[(i.value, i.value) for i in BillingInterval])
    status = models.CharField(max_length=20, choices=SubscriptionStatus.choices, db_index=True)
    billing_anchor = models.DateTimeField(help_text="Periods are counted from here (anniversary billing).")
    period_index = models.PositiveIntegerField(default=0)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField(db_index=True)
    trial_start = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    trial_reminder_sent = models.BooleanField(default=False)
    cancel_at_period_end = models.BooleanField(default=False)
    cancellation_reason = models.CharField(max_length=200, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension_reason = models.CharField(max_length=20, choices=SuspensionReason.choices, blank=True)
    pending_plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    #: The plan version it is billed on (its price is ``price_minor``).
    plan_version = models.PositiveIntegerField(default=1)
    #: A price change a migration scheduled: from the first renewal on/after ``scheduled_effective_at``.
    scheduled_migration_id = models.UUIDField(null=True, blank=True, db_index=True)
    scheduled_version = models.PositiveIntegerField(null=True, blank=True)
    scheduled_price_minor = models.BigIntegerField(null=True, blank=True)
    scheduled_effective_at = models.DateTimeField(null=True, blank=True)
    #: Since when Billing is dunning the customer for one of its invoices (billing.DunningStarted;
    #: cleared by a successful payment). A price migration reports such a subscription, never moves it.
    dunning_since = models.DateTimeField(null=True, blank=True, editable=False)
    test_clock_id = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "current_period_end", "id"], name="sub_due_in_order")]

    def __str__(self) -> str:
        return f"{self.customer.name} · {self.plan.name} ({self.status})"

    # -- reading -------------------------------------------------------------------
    @property
    def price(self) -> Money:
        return Money.from_minor(self.price_minor, self.currency)

    @property
    def period(self) -> SubscriptionPeriod:
        return SubscriptionPeriod(self.current_period_start, self.current_period_end)

    @property
    def scheduled_price(self) -> Money | None:
        if self.scheduled_price_minor is None:
            return None
        return Money.from_minor(self.scheduled_price_minor, self.currency)

    def renewal_boundaries(self, count: int = 60):
        """The moments its next periods start (the trial's end first while trialing)."""
        interval = BillingInterval(self.interval)
        if self.status == SubscriptionStatus.TRIALING:
            yield self.trial_end
            for k in range(1, count):
                yield SubscriptionPeriod.nth(self.trial_end, interval, k).start
            return
        for k in range(1, count + 1):
            yield SubscriptionPeriod.nth(self.billing_anchor, interval, self.period_index + k).start

    def first_renewal_on_or_after(self, moment: datetime) -> datetime | None:
        return next((b for b in self.renewal_boundaries() if b >= moment), None)

    @property
    def trialing(self) -> bool:
        return self.status == SubscriptionStatus.TRIALING

    def _period_ref(self) -> ev.PeriodRef:
        return ev.PeriodRef(start=self.current_period_start, end=self.current_period_end, anchor=self.billing_anchor)

    def _common(self) -> dict:
        return dict(
            subscription_id=str(self.id),
            customer_id=str(self.customer_id),
            plan=self.plan.ref(self.plan_version),
            status=self.status,
        )

    def _move_to_period(self, anchor: datetime, index: int) -> None:
        period = SubscriptionPeriod.nth(anchor, BillingInterval(self.interval), index)
        self.billing_anchor, self.period_index = anchor, index
        self.current_period_start, self.current_period_end = period.start, period.end

    # -- start -----------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        *,
        customer: Customer,
        plan: Plan,
        currency: str,
        trial: bool,
        at: datetime,
        trial_used_before: bool = False,
        live_plan_ids: frozenset[str] = frozenset(),
    ) -> Subscription:
        """CreateSubscription + SelectPlan (+ StartTrial).

        Refuses an archived plan, a currency the plan is not sold in, a second
        live subscription to the same plan, and a trial the plan does not offer
        or the customer already had.
        """
        if plan.archived:
            raise PlanUnavailable(f"The {plan.name} plan is no longer offered.")
        if str(plan.id) in live_plan_ids:
            raise AlreadySubscribed(f"{customer.name} already has a live subscription to {plan.name}.")
        price = plan.option(currency).price
        duration = TrialDuration(plan.trial_days)
        if trial and not duration.offered:
            raise TrialNotAvailable(f"The {plan.name} plan has no free trial.")
        if trial and trial_used_before:
            raise TrialNotAvailable("A free trial is available once per customer.")
        sub = cls(
            id=uuid.uuid4(),
            customer=customer,
            plan=plan,
            currency=price.currency,
            price_minor=price.minor_units,
            interval=plan.interval,
            plan_version=plan.current_version,
            test_clock_id=customer.test_clock_id,
            created_at=at,
        )
        if trial:
            trial_end = duration.ends_at(at)
            sub.status = SubscriptionStatus.TRIALING
            sub.trial_start, sub.trial_end = at, trial_end
            sub.billing_anchor, sub.period_index = trial_end, 0
            sub.current_period_start, sub.current_period_end = at, trial_end
        else:
            sub.status = SubscriptionStatus.PENDING_PAYMENT
            sub._move_to_period(at, 0)
        common = sub._common()
        sub.record(
            ev.SubscriptionCreated(
                **common, price=price, period=sub._period_ref(), trial=trial, trial_end=sub.trial_end
            ),
            at=at,
        )
        sub.record(ev.PlanSelected(**common, price=price), at=at)
        if trial:
            sub.record(
                ev.TrialStarted(**common, trial_start=at, trial_end=sub.trial_end, trial_days=duration.days), at=at
            )
        return sub

    def note_dunning(self, *, since: datetime | None) -> None:
        """Billing told us it is dunning the customer for this subscription (``since``), or that a
        payment settled it (None). No event: it is Billing's fact, kept here for our own decisions."""
        self.dunning_since = since

    # -- trial -------------------------------------------------------------------------
    def remind_trial_ending(self, *, at: datetime, days_before: int, has_payment_method: bool) -> None:
        if self.status != SubscriptionStatus.TRIALING:
            raise InvalidTransition("Only a trialing subscription gets a trial-ending reminder.")
        if self.trial_reminder_sent:
            raise InvalidTransition("The trial-ending reminder was already triggered.")
        if at < self.trial_end - timedelta(days=days_before):
            raise InvalidTransition("It is too early for the trial-ending reminder.")
        self.trial_reminder_sent = True
        self.record(
            ev.TrialEndingSoon(
                **self._common(),
                trial_end=self.trial_end,
                days_left=TrialDuration.days_left(self.trial_end, at),
                has_payment_method=has_payment_method,
            ),
            at=at,
        )

    def expire_trial(self, *, at: datetime, has_payment_method: bool) -> None:
        """TrialExpired, then: cancelled if a cancellation was scheduled, active
        (first period starts at trial end) if a payment method is on file, else suspended."""
        if self.status != SubscriptionStatus.TRIALING:
            raise InvalidTransition("Only a trialing subscription can have its trial expire.")
        if at < self.trial_end:
            raise InvalidTransition("The trial has not ended yet.")
        ended = self.trial_end
        if self.cancel_at_period_end:
            self.record(ev.TrialExpired(**self._common(), trial_end=ended, converted=False), at=ended)
            self._end(at=ended, reason=self.cancellation_reason, at_period_end=True)
            return
        if has_payment_method:
            self.status = SubscriptionStatus.ACTIVE
            self.activated_at = ended
            self._move_to_period(ended, 0)
            self.record(ev.TrialExpired(**self._common(), trial_end=ended, converted=True), at=ended)
            self._apply_due_price_change(boundary=ended)
            self.record(
                ev.SubscriptionActivated(
                    **self._common(),
                    price=self.price,
                    period=self._period_ref(),
                    activated_at=ended,
                    reason="trial_converted",
                ),
                at=ended,
            )
            return
        self.status = SubscriptionStatus.SUSPENDED
        self.suspended_at, self.suspension_reason = ended, SuspensionReason.NO_PAYMENT_METHOD
        common = self._common()
        self.record(ev.TrialExpired(**common, trial_end=ended, converted=False), at=ended)
        self.record(
            ev.SubscriptionSuspended(**common, reason=SuspensionReason.NO_PAYMENT_METHOD, suspended_at=ended), at=ended
        )

    # -- lifecycle ---------------------------------------------------------------------
    def activate(self, *, at: datetime) -> None:
        """The first invoice was paid: pending_payment → active."""
        if self.status != SubscriptionStatus.PENDING_PAYMENT:
            raise InvalidTransition(f"Only a subscription pending payment can be activated (it is {self.status}).")
        self.status = SubscriptionStatus.ACTIVE
        self.activated_at = at
        self.record(
            ev.SubscriptionActivated(
                **self._common(), price=self.price, period=self._period_ref(), activated_at=at, reason="first_payment"
            ),
            at=at,
        )

    def suspend(self, *, at: datetime, reason: str) -> None:
        if self.status != SubscriptionStatus.ACTIVE:
            raise InvalidTransition(f"Only an active subscription can be suspended (it is {self.status}).")
        self.status = SubscriptionStatus.SUSPENDED
        self.suspended_at, self.suspension_reason = at, SuspensionReason(reason)
        self.record(ev.SubscriptionSuspended(**self._common(), reason=reason, suspended_at=at), at=at)

    def resume(self, *, at: datetime, initiator: str = ResumeInitiator.CUSTOMER) -> None:
        """Back to active: from a suspension, or by withdrawing a scheduled cancellation.

        A customer cannot lift a suspension for non-payment themselves (paying
        lifts it); a new period starts when the old one has run out meanwhile
        or was never billed (trial ended without a payment method)."""
        if self.status == SubscriptionStatus.SUSPENDED:
            if initiator == ResumeInitiator.CUSTOMER and self.suspension_reason != SuspensionReason.STAFF:
                raise InvalidTransition(
                    "This subscription is suspended for payment; paying the open invoice or adding a card resumes it."
                )
            restart = at >= self.current_period_end or self.suspension_reason == SuspensionReason.NO_PAYMENT_METHOD
            if restart:
                self._move_to_period(at, 0)
            self.status = SubscriptionStatus.ACTIVE
            self.suspended_at, self.suspension_reason = None, ""
            self.activated_at = self.activated_at or at
            resumed_from = "suspended"
        elif self.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING) and self.cancel_at_period_end:
            self.cancel_at_period_end, self.cancellation_reason = False, ""
            restart, resumed_from = False, "scheduled_cancellation"
        else:
            raise InvalidTransition(
                f"Only a suspended subscription or one scheduled to cancel can be resumed (it is {self.status})."
            )
        self.record(
            ev.SubscriptionResumed(
                **self._common(),
                price=self.price,
                resumed_from=resumed_from,
                resumed_at=at,
                period=self._period_ref(),
                period_restarted=restart,
            ),
            at=at,
        )

    def cancel(self, *, at: datetime, reason: str = "", at_period_end: bool = False) -> None:
        """Cancel now, or at the end of the current period (or trial).

        A subscription that is not yet paid or is suspended ends at once."""
        if self.status == SubscriptionStatus.CANCELLED:
            raise InvalidTransition("The subscription is already cancelled.")
        reason = (reason or "").strip()[:200] or "requested"
        self._drop_price_change(reason="cancelled", at=at)  # who cancels before the date never pays it
        if at_period_end and self.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            if self.cancel_at_period_end:
                raise InvalidTransition("The subscription is already scheduled to cancel at the end of the period.")
            self.cancel_at_period_end, self.cancellation_reason = True, reason
            self.record(
                ev.SubscriptionCancellationScheduled(
                    **self._common(), cancel_at=self.current_period_end, reason=reason
                ),
                at=at,
            )
            return
        self._end(at=at, reason=reason, at_period_end=False)

    def _end(self, *, at: datetime, reason: str, at_period_end: bool) -> None:
        self._drop_price_change(reason="cancelled", at=at)
        previous = self.status
        self.status = SubscriptionStatus.CANCELLED
        self.cancelled_at, self.cancellation_reason = at, reason
        self.cancel_at_period_end = False
        self.pending_plan = None
        self.record(
            ev.SubscriptionCancelled(
                **self._common(),
                price=self.price,
                reason=reason,
                cancelled_at=at,
                at_period_end=at_period_end,
                period=self._period_ref(),
                previous_status=previous,
            ),
            at=at,
        )

    def renew(self, *, at: datetime) -> None:
        """RenewSubscription: the current period has ended — roll into the next
        (SubscriptionRenewed), or end a scheduled cancellation."""
        if self.current_period_end > at:
            raise InvalidTransition("The current period has not ended yet.")
        ended = self.current_period_end
        if self.cancel_at_period_end and self.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED):
            self._end(at=ended, reason=self.cancellation_reason, at_period_end=True)
            return
        if self.status != SubscriptionStatus.ACTIVE:
            raise InvalidTransition(f"Only an active subscription renews (it is {self.status}).")
        previous = self._period_ref()
        self._move_to_period(self.billing_anchor, self.period_index + 1)
        self._apply_due_price_change(boundary=ended)
        self.record(
            ev.SubscriptionRenewed(
                **self._common(), price=self.price, previous_period=previous, period=self._period_ref()
            ),
            at=ended,
        )

    # -- plan changes ------------------------------------------------------------------
    def change_plan(
        self, *, target: Plan, at: datetime, policy: PlanChangePolicy, approved_by_staff: bool = False
    ) -> bool:
        """ChangePlan under PlanChangePolicy. Returns False when the change waits for
        staff approval (PlanChangeRequested) and True when it happened (PlanChanged)."""
        decision = self.decide_plan_change(target=target, policy=policy, approved_by_staff=approved_by_staff)
        wanted = target.option(self.currency)
        if decision.needs_approval:
            self.pending_plan = target
            self.record(
                ev.PlanChangeRequested(**self._common(), requested_plan=target.ref(), requested_price=wanted.price),
                at=at,
            )
            return False
        self._drop_price_change(reason="plan_changed", at=at)
        old_plan, old_price, old_period = self.plan.ref(self.plan_version), self.price, self._period_ref()
        interval_changes = target.interval != self.interval
        self.plan, self.price_minor, self.interval = target, wanted.price.minor_units, target.interval
        self.plan_version = target.current_version
        self.pending_plan = None
        if interval_changes and not self.trialing:
            self._move_to_period(at, 0)  # a new interval starts a new period now (credited by Billing)
        self.record(
            ev.PlanChanged(
                **self._common(),
                old_plan=old_plan,
                old_price=old_price,
                new_price=wanted.price,
                changed_at=at,
                period=old_period,
                new_period=self._period_ref(),
                direction=decision.direction.value,
                in_trial=self.trialing,
            ),
            at=at,
        )
        return True

    # -- price changes (a price migration moves it to another version of its plan) ------------
    def schedule_price_change(
        self, *, migration_id: str, to_version: int, new_price: Money, effective_at: datetime, at: datetime
    ) -> None:
        """PriceChangeScheduled: from the first renewal on/after ``effective_at`` it is billed
        ``new_price`` on ``to_version``. Only a live, paying (or trialing) subscription that is not
        cancelling, has no other change scheduled and is not on that version already; the date is a
        renewal (a period boundary) not in the past."""
        if self.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            raise InvalidTransition(
                f"Only an active or trialing subscription gets a price change (it is {self.status})."
            )
        if self.cancel_at_period_end:
            raise InvalidTransition("The subscription is cancelling; it keeps its price to the end.")
        if self.scheduled_migration_id is not None:
            raise InvalidTransition("A price change is already scheduled for this subscription.")
        if to_version == self.plan_version:
            raise InvalidTransition(f"The subscription is on version {to_version} already.")
        if new_price.currency != self.currency:
            raise InvalidInput("The new price is in another currency.", details={"currency": new_price.currency})
        if effective_at < at or self.first_renewal_on_or_after(effective_at) != effective_at:
            raise InvalidInput("A price change takes effect at a renewal to come.", details={"effective_at": "invalid"})
        self.scheduled_migration_id = uuid.UUID(str(migration_id))
        self.scheduled_version, self.scheduled_price_minor = to_version, new_price.minor_units
        self.scheduled_effective_at = effective_at
        self.record(
            ev.PriceChangeScheduled(
                **self._common(),
                migration_id=str(migration_id),
                from_version=self.plan_version,
                to_version=to_version,
                old_price=self.price,
                new_price=new_price,
                effective_at=effective_at,
            ),
            at=at,
        )

    def cancel_price_change(self, *, reason: str, at: datetime) -> None:
        if self.scheduled_migration_id is None:
            raise InvalidTransition("No price change is scheduled for this subscription.")
        self._drop_price_change(reason=reason, at=at)

    def _drop_price_change(self, *, reason: str, at: datetime) -> None:
        if self.scheduled_migration_id is None:
            return
        migration_id = str(self.scheduled_migration_id)
        self._clear_price_change()
        self.record(ev.PriceChangeCancelled(**self._common(), migration_id=migration_id, reason=reason), at=at)

    def _clear_price_change(self) -> None:
        self.scheduled_migration_id = self.scheduled_version = None
        self.scheduled_price_minor = self.scheduled_effective_at = None

    def _apply_due_price_change(self, *, boundary: datetime) -> None:
        """At a renewal on/after the scheduled date: PriceChanged, and the new period is billed the new price."""
        if self.scheduled_migration_id is None or boundary < self.scheduled_effective_at:
            return
        migration_id, effective_at = str(self.scheduled_migration_id), self.scheduled_effective_at
        from_version, old_price = self.plan_version, self.price
        self.plan_version, self.price_minor = self.scheduled_version, self.scheduled_price_minor
        self._clear_price_change()
        self.record(
            ev.PriceChanged(
                **self._common(),
                migration_id=migration_id,
                from_version=from_version,
                to_version=self.plan_version,
                old_price=old_price,
                new_price=self.price,
                effective_at=effective_at,
            ),
            at=boundary,
        )

    def decide_plan_change(
        self, *, target: Plan, policy: PlanChangePolicy, approved_by_staff: bool = False
    ) -> PlanChangeDecision:
        """What :meth:`change_plan` would do, without doing it: raises the DomainError that would
        refuse it, or says whether it waits for approval (the plan-change page asks this first)."""
        if self.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            raise InvalidTransition(f"Only an active or trialing subscription can change plans (it is {self.status}).")
        if target.archived:
            raise PlanUnavailable(f"The {target.name} plan is no longer offered.")
        current = PlanOption(str(self.plan_id), self.plan.plan_tier, BillingInterval(self.interval), self.price)
        return policy.decide(
            current=current,
            target=target.option(self.currency),
            trialing=self.trialing,
            approved_by_staff=approved_by_staff,
        )

    def approve_plan_change(self, *, at: datetime, policy: PlanChangePolicy) -> None:
        if self.pending_plan is None:
            raise NoPendingPlanChange("There is no plan change waiting for approval.")
        self.change_plan(target=self.pending_plan, at=at, policy=policy, approved_by_staff=True)

    def decline_plan_change(self, *, at: datetime) -> None:
        if self.pending_plan is None:
            raise NoPendingPlanChange("There is no plan change waiting for approval.")
        requested = self.pending_plan.ref()
        self.pending_plan = None
        self.record(ev.PlanChangeDeclined(**self._common(), requested_plan=requested), at=at)


# -- usage ---------------------------------------------------------------------------


class UsageRecord(models.Model):
    """One reported usage fact. Append-only; a repeated idempotency key is a duplicate."""

    id = models.BigAutoField(primary_key=True)
    subscription_id = models.UUIDField()
    metric = models.CharField(max_length=50)
    quantity = models.BigIntegerField()
    timestamp = models.DateTimeField()
    period_start = models.DateTimeField(help_text="The billing period the usage counts towards.")
    idempotency_key = models.CharField(max_length=100)
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription_id", "idempotency_key"], name="usage_key_once"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.metric} at {self.timestamp:%Y-%m-%d %H:%M}"


class UsageCounter(models.Model):
    """Running total of a metric in one period of a subscription (what the GET endpoint reads)."""

    id = models.BigAutoField(primary_key=True)
    subscription_id = models.UUIDField()
    metric = models.CharField(max_length=50)
    period_start = models.DateTimeField()
    used = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription_id", "metric", "period_start"], name="one_counter_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric}: {self.used}"


class UsagePeriod(models.Model):
    """A closed billing period whose usage becomes final once its grace window has passed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="usage_periods")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    final = models.BooleanField(default=False, help_text="The subscription ended with this period.")
    due_at = models.DateTimeField(db_index=True, help_text="Period end + the grace window for late usage.")
    calculated_at = models.DateTimeField(null=True, blank=True)
    test_clock_id = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "period_start"], name="one_close_per_period"),
        ]

    def __str__(self) -> str:
        return f"Usage of {self.period_start:%Y-%m-%d} – {self.period_end:%Y-%m-%d}"


# The PriceMigration aggregate lives in its own module; importing it here registers its models.
from subscriptions.price_migrations import ItemOutcome, PriceMigration, PriceMigrationItem  # noqa: E402, F401
