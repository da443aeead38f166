"""Configuration staff edit in the admin: tax rates, the dunning schedule, number sequences."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from billing.values import DunningPlan, Jurisdiction


class TaxRate(models.Model):
    """A rate per jurisdiction: a country, or a region inside it. Exclusive of the price."""

    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, e.g. US")
    region = models.CharField(max_length=10, blank=True, help_text="Blank for the whole country, e.g. CA")
    rate = models.DecimalField(
        max_digits=6,
        decimal_places=5,
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal("0.99"))],
        help_text="0.0725 for 7.25 %",
    )
    name = models.CharField(max_length=100, help_text="Shown on the invoice, e.g. California sales tax")
    active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["country", "region"], name="one_rate_per_jurisdiction")]
        ordering = ["country", "region"]

    def __str__(self) -> str:
        return f"{self.name} ({Jurisdiction(self.country, self.region)}: {self.rate * 100:.3f} %)"

    def clean(self) -> None:
        self.country = self.country.upper()
        self.region = self.region.upper()

    @classmethod
    def for_jurisdiction(cls, jurisdiction: Jurisdiction) -> TaxRate | None:
        rates = {
            r.region: r
            for r in cls.objects.filter(country=jurisdiction.country, region__in=[jurisdiction.region, ""], active=True)
        }
        return rates.get(jurisdiction.region) or rates.get("")

    @classmethod
    def for_jurisdictions(cls, jurisdictions: set[Jurisdiction]) -> dict[Jurisdiction, TaxRate | None]:
        countries = {j.country for j in jurisdictions}
        rows = {(r.country, r.region): r for r in cls.objects.filter(country__in=countries, active=True)}
        return {j: rows.get((j.country, j.region)) or rows.get((j.country, "")) for j in jurisdictions}


def _parse_offsets(text: str, unit: str) -> tuple[timedelta, ...]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    try:
        numbers = [Decimal(v) for v in values]
    except ArithmeticError:
        raise ValidationError(f"Use comma-separated numbers of {unit}, e.g. 1, 24, 72.") from None
    return tuple(timedelta(**{unit: float(n)}) for n in numbers)


class DunningSchedule(models.Model):
    """When failed payments are retried and how dunning escalates. One row, 'default'."""

    name = models.CharField(max_length=30, primary_key=True, default="default")
    retry_offsets_hours = models.CharField(
        max_length=100, default="1, 24, 72", help_text="Retries after the first failure, in hours."
    )
    escalation_offsets_days = models.CharField(
        max_length=100,
        default="3, 7, 14",
        help_text="Dunning steps after retries run out, in days. Each step but the last sends a reminder "
        "(DunningEscalated) and tries once more; the last suspends the subscription (DunningExhausted).",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Retries after {self.retry_offsets_hours} h; dunning steps after {self.escalation_offsets_days} days"

    def clean(self) -> None:
        try:
            self.plan()
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def plan(self) -> DunningPlan:
        return DunningPlan(
            retry_offsets=_parse_offsets(self.retry_offsets_hours, "hours"),
            escalation_offsets=_parse_offsets(self.escalation_offsets_days, "days"),
        )

    @classmethod
    def current(cls) -> DunningPlan:
        row = cls.objects.filter(pk="default").first()
        return (row or cls()).plan()


class Sequence(models.Model):
    """Gapless counters (invoice and credit-note numbers per year). Locked while used."""

    name = models.CharField(max_length=30, primary_key=True)
    last_value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.last_value}"

    @classmethod
    def take(cls, name: str, count: int = 1) -> list[int]:
        """Reserve ``count`` consecutive numbers inside the current transaction.

        The row stays locked until commit, so numbers are gapless: a rolled-back
        transaction gives its numbers back.
        """
        cls.objects.get_or_create(name=name)
        row = cls.objects.select_for_update().get(name=name)
        first = row.last_value + 1
        row.last_value += count
        row.save(update_fields=["last_value"])
        return list(range(first, first + count))
