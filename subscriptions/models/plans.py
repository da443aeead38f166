"""The Plan aggregate (what can be bought) and its rows: prices, versions (grandfathered terms), overage rates."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models

from sharedkernel.aggregates import AggregateRoot
from sharedkernel.errors import InvalidInput, InvalidTransition
from sharedkernel.values import MAX_INTEGER_DIGITS, RATE_DECIMALS, Money, UnitRate
from subscriptions import events as ev
from subscriptions.rules import CurrencyNotOffered, PlanOption
from subscriptions.values import MAX_QUANTITY, BillingInterval, PlanTerms, PlanTier, TrialDuration


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

    @property
    def terms(self) -> PlanTerms:
        """The current version's terms (as define/revise staged them, until they are saved)."""
        return PlanTerms(
            name=self.name,
            trial_days=self.trial_days,
            prices=self.prices,
            features=list(self.features),
            included_usage=dict(self.included_usage),
            overage_rates=self.overage_rates,
        )

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
    def define(cls, *, code: str, tier: str, interval: str, terms: PlanTerms, at: datetime) -> Plan:
        plan = cls(id=uuid.uuid4(), code=code, created_at=at, current_version=1)
        plan._apply(tier=tier, interval=interval, terms=terms)
        plan.__dict__["_staged_version_at"] = at
        plan.record(ev.PlanCreated(**plan._snapshot(), current_from=at), at=at)
        return plan

    def revise(self, terms: PlanTerms, *, at: datetime) -> None:
        """A new version (current_version + 1) with complete new terms, current for new
        subscriptions from ``at``. Existing subscriptions stay on their version and price
        until a price migration moves them."""
        self._apply(tier=self.tier, interval=self.interval, terms=terms)
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

    def _apply(self, *, tier: str, interval: str, terms: PlanTerms) -> None:
        name, trial_days, prices = terms.name, terms.trial_days, terms.prices
        features, included_usage = terms.features or [], terms.included_usage or {}
        overage_rates = terms.overage_rates or {}
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
            tier=self.tier,
            interval=self.interval,
            version=self.current_version,
            **self.terms.keywords(),
        )

    def staged_version(self) -> PlanVersion | None:
        """The version row define/revise made, not yet written."""
        at = self.__dict__.pop("_staged_version_at", None)
        if at is None:
            return None
        return PlanVersion.of_terms(plan=self, version=self.current_version, terms=self.terms, current_from=at)

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
    def of_terms(cls, *, plan, version: int, terms: PlanTerms, current_from: datetime) -> PlanVersion:
        """The row of a version's terms (the name is the plan's, not the version's)."""
        return cls(
            plan=plan,
            version=version,
            prices=[p.to_json() for p in terms.prices],
            included_usage=dict(terms.included_usage),
            overage_rates={metric: [r.to_json() for r in rates] for metric, rates in terms.overage_rates.items()},
            trial_days=terms.trial_days,
            features=list(terms.features),
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
