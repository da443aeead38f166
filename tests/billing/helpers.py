"""Setting up customers and plans through the real commands (as an API client would)."""

from __future__ import annotations

import contextlib

from billing import commands as billing
from sharedkernel.clock import FixedClock
from sharedkernel.values import Money
from subscriptions import commands as subs


def plan(code="pro", price="30.00 USD", interval="month", tier="professional", trial_days=0, *, name=None, **extra):
    """A plan defined through the real command; ``price`` lists its prices ("10.00 USD, 9.00 EUR")."""
    prices = [Money(*p.split()) for p in price.split(",")]
    return subs.define_plan(
        code=code,
        name=name or code.title(),
        tier=tier,
        interval=interval,
        trial_days=trial_days,
        prices=prices,
        **extra,
    )


def metered_plan(code="api-m", **included):
    """The API plan: 50.00 USD a month with 1,000 API calls (and ``included``) included, 0.01 USD a call over."""
    return plan(
        code,
        "50.00 USD",
        name="API",
        included_usage={"api_calls": 1000, **included},
        overage_rates={"api_calls": [Money("0.01", "USD")]},
    )


def customer(drain, *, card="pm_card_visa", currency="USD", country="US", region="CA", test_clock_id=None, **kw):
    c, _ = subs.register_customer(
        name=kw.pop("name", "Ada Lovelace"),
        email=kw.pop("email", "ada@example.com"),
        currency=currency,
        country=country,
        region=region,
        test_clock_id=test_clock_id,
        **kw,
    )
    drain()
    if card:
        billing.update_payment_method(customer_id=str(c.id), token=card)
        drain()
    return c


def at_clock(moment):
    return FixedClock(moment)


class WorkerDied(BaseException):
    """Stands for the process ending: not an Exception, so nothing on the way catches it."""


class DyingTaxTable:
    """A tax calculator whose worker dies while asking it."""

    def calculate_many(self, requests):
        raise WorkerDied()


@contextlib.contextmanager
def tax_worker_dies(settings):
    """While inside: every tax quote kills the worker asking it (:class:`WorkerDied`); after: the
    TaxRate table again."""
    from billing.ports import TAX_CALCULATORS, reset_adapters

    TAX_CALCULATORS["dying"] = "tests.billing.helpers.DyingTaxTable"
    settings.BILLING_TAX_CALCULATOR = "dying"
    reset_adapters()
    try:
        yield
    finally:
        TAX_CALCULATORS.pop("dying")
        settings.BILLING_TAX_CALCULATOR = "table"
        reset_adapters()
