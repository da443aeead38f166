"""Ports: the interfaces Billing owns for the outside world. Adapters live in billing/acl/.

Which adapter runs is a setting (BILLING_PAYMENT_GATEWAY = sandbox | stripe,
BILLING_TAX_CALCULATOR = table | http); the defaults work offline.
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from billing.values import (
    Jurisdiction,
    PaymentMethodInfo,
    PaymentResult,
    PlanChangeOutlook,
    RefundResult,
    TaxCalculation,
    TaxUnavailable,
)
from sharedkernel.declarations import external_system
from sharedkernel.values import Money


class PaymentGateway(Protocol):
    def charge(self, *, amount: Money, token: str, idempotency_key: str, description: str) -> PaymentResult:
        """Charge ``amount``; the same ``idempotency_key`` never charges twice."""

    def refund(self, *, charge_reference: str, amount: Money, idempotency_key: str) -> RefundResult: ...

    def describe(self, token: str) -> PaymentMethodInfo:
        """Brand and last four digits; raises InvalidPaymentMethod for an unknown token."""


class TaxCalculator(Protocol):
    def calculate(self, *, amount: Money, jurisdiction: Jurisdiction, exempt: bool) -> TaxCalculation:
        """Tax on ``amount`` (exclusive); raises TaxUnavailable rather than guess."""

    def calculate_many(self, requests: list[tuple[Money, Jurisdiction, bool]]) -> list[TaxCalculation | TaxUnavailable]:
        """Many at once (a bill run); a failure is returned in its place, not raised."""


class PlanChangeRules(Protocol):
    def outlook(self, *, subscription_id: str, plan_id: str) -> PlanChangeOutlook:
        """What ChangePlan (Subscriptions' rule, not Billing's) would do with this change now."""


GATEWAYS = {"sandbox": "billing.acl.payments.SandboxGateway", "stripe": "billing.acl.payments.StripeGateway"}
TAX_CALCULATORS = {"table": "billing.acl.tax.TaxRateTable", "http": "billing.acl.tax.HttpTaxCalculator"}


@cache
def _build(path: str):
    return import_string(path)()


def payment_gateway() -> PaymentGateway:
    return _build(GATEWAYS[getattr(settings, "BILLING_PAYMENT_GATEWAY", "sandbox")])


def tax_calculator() -> TaxCalculator:
    return _build(TAX_CALCULATORS[getattr(settings, "BILLING_TAX_CALCULATOR", "table")])


def reset_adapters() -> None:
    """Forget built adapters (tests switch settings)."""
    _build.cache_clear()


_plan_change_rules: list[PlanChangeRules] = []


def use_plan_change_rules(rules: PlanChangeRules) -> None:
    """The composition root (config/apps.py) plugs Subscriptions' plan-change policy in here, so the
    plan-change page says "refused" or "waits for approval" before the customer confirms."""
    _plan_change_rules[:] = [rules]


def plan_change_rules() -> PlanChangeRules | None:
    return _plan_change_rules[0] if _plan_change_rules else None


external_system(
    "Payment gateway",
    context="billing",
    port=PaymentGateway,
    description="Charges and refunds cards (the sandbox gateway offline, Stripe by settings).",
)
external_system(
    "Tax API",
    context="billing",
    port=TaxCalculator,
    description="Tax per jurisdiction (the rate table staff edit, or an HTTP tax service by settings).",
)
