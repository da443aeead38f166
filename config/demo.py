"""Demo data with history, made the honest way.

Nothing is written behind the domain's back: the seeder calls the same
commands the API calls, at past moments (a FixedClock), and runs the same beat
jobs day by day from ``months`` ago until now, draining every event through
the real handlers in-process. What you see afterwards — trials that converted,
renewals, cancellations, suspensions — happened through the event chains.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing import commands as billing
from billing.models import Coupon, TaxRate
from sharedkernel.bus import drain
from sharedkernel.clock import FixedClock
from sharedkernel.errors import DomainError
from sharedkernel.scheduling import JOBS, run_job
from sharedkernel.values import Money
from subscriptions import commands as subs
from subscriptions.models import Plan

DEMO_PASSWORD = "subscriptionhub-demo"

PLANS = [
    # code, name, tier, interval, trial days, prices, features, included usage
    (
        "starter-monthly",
        "Starter",
        "basic",
        "month",
        14,
        ["19.00 USD", "18.00 EUR", "2500 JPY", "6.000 KWD"],
        ["1 workspace", "Email support"],
        {"api_calls": 10_000},
    ),
    (
        "pro-monthly",
        "Pro",
        "professional",
        "month",
        14,
        ["49.00 USD", "45.00 EUR", "6500 JPY", "15.000 KWD"],
        ["10 workspaces", "Priority support", "Webhooks"],
        {"api_calls": 100_000},
    ),
    (
        "pro-annual",
        "Pro (annual)",
        "professional",
        "year",
        14,
        ["490.00 USD", "450.00 EUR", "65000 JPY"],
        ["10 workspaces", "Priority support", "Webhooks", "Two months free"],
        {"api_calls": 100_000},
    ),
    (
        "team-monthly",
        "Team",
        "professional",
        "month",
        0,
        ["99.00 USD", "92.00 EUR"],
        ["Unlimited workspaces", "SSO", "Audit log"],
        {"api_calls": 500_000},
    ),
    (
        "enterprise-annual",
        "Enterprise",
        "enterprise",
        "year",
        0,
        ["4990.00 USD", "4600.00 EUR"],
        ["Dedicated support", "Custom contract", "99.95% SLA"],
        {"api_calls": 10_000_000},
    ),
]

OVERAGE = {"USD": "0.01", "EUR": "0.01", "JPY": "1", "KWD": "0.003"}  # per unit over the included quantity

NAMES = [
    "Acme Analytics",
    "Blue Harbor",
    "Cobalt Labs",
    "Delta Freight",
    "Evergreen Foods",
    "Fjord Systems",
    "Granite Health",
    "Helios Energy",
    "Iris Studio",
    "Juniper Legal",
    "Kite Robotics",
    "Lumen Media",
    "Maple Finance",
    "Nimbus Cloud",
    "Orbit Travel",
    "Pioneer Retail",
    "Quartz Security",
    "Redwood Games",
    "Summit Logistics",
    "Tidal Audio",
    "Umbra Design",
    "Vertex Bio",
    "Willow Schools",
    "Xenon Motors",
    "Yarrow Farms",
    "Zephyr Air",
    "Atlas Insurance",
    "Beacon Realty",
    "Cedar Clinics",
    "Dune Outdoor",
    "Ember Coffee",
    "Falcon Couriers",
    "Glacier Water",
    "Harbor Dental",
    "Indigo Fashion",
    "Jasper Tools",
]
COUNTRIES = [
    ("US", "CA", "USD"),
    ("US", "NY", "USD"),
    ("DE", "", "EUR"),
    ("FR", "", "EUR"),
    ("JP", "", "JPY"),
    ("KW", "", "KWD"),
    ("GB", "", "USD"),
    ("US", "TX", "USD"),
]


@dataclass
class Seeded:
    plans: int = 0
    customers: int = 0
    subscriptions: int = 0
    days: int = 0


def _plans(now: datetime) -> list[Plan]:
    made = []
    for code, name, tier, interval, trial, prices, features, usage in PLANS:
        existing = Plan.objects.filter(code=code).first()
        if existing:
            made.append(existing)
            continue
        money = [Money(*p.split()) for p in prices]
        rates = {"api_calls": [Money(OVERAGE[m.currency], m.currency) for m in money]}
        made.append(
            subs.define_plan(
                code=code,
                name=name,
                tier=tier,
                interval=interval,
                trial_days=trial,
                prices=money,
                features=features,
                included_usage=usage,
                overage_rates=rates,
                clock=FixedClock(now),
            )
        )
    return made


def _billing_configuration() -> None:
    """Tax rates and a coupon, as staff would enter them in the admin."""
    rates = [
        ("US", "CA", "0.0725", "California sales tax"),
        ("US", "NY", "0.08875", "New York sales tax"),
        ("US", "TX", "0.0625", "Texas sales tax"),
        ("DE", "", "0.19", "Umsatzsteuer"),
        ("FR", "", "0.20", "TVA"),
        ("JP", "", "0.10", "Consumption tax"),
    ]
    for country, region, rate, name in rates:
        TaxRate.objects.get_or_create(country=country, region=region, defaults={"rate": rate, "name": name})
    Coupon.objects.get_or_create(
        code="WELCOME20",
        defaults={"name": "Welcome", "percent_off": 20, "duration": "repeating", "duration_in_periods": 3},
    )


#: The customer logins the demo prints (all with DEMO_PASSWORD), and what each shows.
DEMO_LOGINS = {
    "demo@example.com": "paid invoices (one prorated), a credit, usage with overage, a webhook endpoint, e-mails",
    "trial@example.com": "a free trial that is still running",
    "dunning@example.com": "a declined card: a failed invoice in dunning",
}


def _login(email: str):
    """A customer login whose e-mail is already verified."""
    from allauth.account.models import EmailAddress

    User = get_user_model()
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, email, DEMO_PASSWORD)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def _staff_login():
    User = get_user_model()
    staff = User.objects.filter(username="admin").first()
    if staff is None:
        staff = User.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
    return staff


def seed(*, months: int = 6, customers: int = 36, seed_value: int = 7, log=print) -> Seeded:
    """Create plans and ``customers`` customers over the last ``months`` months."""
    rng = random.Random(seed_value)
    previous_mode = settings.EVENT_DISPATCH
    settings.EVENT_DISPATCH = "manual"  # handlers run here, in order, before the worker starts
    result = Seeded()
    try:
        now = timezone.now().replace(microsecond=0)
        start = now - timedelta(days=30 * months)
        plans = _plans(start)
        _billing_configuration()
        result.plans = len(plans)
        _staff_login()
        story = _DemoStory(start=start, now=now, plans={p.code: p for p in plans})
        signups = sorted(
            start + timedelta(seconds=rng.randrange(int((now - start).total_seconds()))) for _ in range(customers)
        )
        day = start
        index = 0
        while day <= now:
            while index < len(signups) and signups[index] <= day:
                _sign_up(index, signups[index], plans, rng, None, result)
                index += 1
            story.on(day, result)
            _act_on_existing(day, rng, spare=story.subscription_ids)
            for name in JOBS:
                run_job(name, now=day)
            drain()
            result.days += 1
            day += timedelta(days=1)
        drain()
    finally:
        settings.EVENT_DISPATCH = previous_mode
    log(
        f"Demo data: {result.plans} plans, {result.customers} customers, {result.subscriptions} subscriptions, "
        f"{result.days} days of history."
    )
    return result


def _sign_up(index: int, when: datetime, plans: list[Plan], rng: random.Random, user, result: Seeded) -> None:
    country, region, currency = COUNTRIES[index % len(COUNTRIES)]
    name = NAMES[index % len(NAMES)]
    email = user.email if user else f"billing{index}@{name.lower().replace(' ', '')}.example"
    customer, _ = subs.register_customer(
        name=name,
        email=email,
        currency=currency,
        country=country,
        region=region,
        tax_exempt=index % 11 == 0,
        user=user,
        clock=FixedClock(when),
    )
    result.customers += 1
    drain()  # Billing opens the account
    roll = rng.random()
    card = "pm_card_visa" if roll < 0.85 else "pm_card_chargeDeclined" if roll < 0.93 else None
    if card:
        billing.update_payment_method(customer_id=str(customer.pk), token=card, clock=FixedClock(when))
    offered = [p for p in plans if p.price_in(currency) is not None]
    plan = rng.choice(offered)
    trial = plan.trial_days > 0 and rng.random() < 0.7
    try:
        subs.subscribe(customer_id=customer.pk, plan_id=plan.pk, currency=currency, trial=trial, clock=FixedClock(when))
        result.subscriptions += 1
    except DomainError:
        pass


def _act_on_existing(day: datetime, rng: random.Random, spare: frozenset = frozenset()) -> None:
    """Now and then a customer cancels, schedules a cancellation or changes plan."""
    from subscriptions.models import Subscription

    live = list(Subscription.objects.filter(status__in=["active", "trialing"]).select_related("plan"))
    for sub in live:
        roll = rng.random()
        if str(sub.pk) in spare:
            continue  # the scripted demo customers follow their own story
        clock = FixedClock(day + timedelta(hours=rng.randrange(1, 20)))
        try:
            if roll < 0.006 and sub.status == "active":
                others = [
                    p
                    for p in Plan.objects.filter(interval=sub.plan.interval, archived=False).exclude(tier="enterprise")
                    if p.pk != sub.plan_id and p.price_in(sub.currency) is not None
                ]
                if others:
                    subs.change_plan(subscription_id=sub.pk, plan_id=rng.choice(others).pk, clock=clock)
            elif roll < 0.008:
                subs.cancel_subscription(subscription_id=sub.pk, reason="switching to a competitor", clock=clock)
            elif roll < 0.010:
                subs.cancel_subscription(subscription_id=sub.pk, reason="budget cuts", at_period_end=True, clock=clock)
        except DomainError:
            pass


class _DemoStory:
    """The three customers whose logins the demo prints, each with a scripted history that shows
    what the product does. Everything goes through the real commands, at past moments.

    * demo@example.com (Germany, EUR, card that pays): Pro from the first day, reporting usage
      over Pro's included API calls every day; an upgrade to Team (a prorated invoice), later a
      downgrade back to Pro (credit for the unused part), a goodwill credit from staff, and a
      webhook endpoint that receives its invoice and payment events.
    * trial@example.com: started a Pro trial a few days ago.
    * dunning@example.com: subscribed to Starter ten days ago with a card that is declined.
    """

    def __init__(self, *, start: datetime, now: datetime, plans: dict):
        self.start, self.now, self.plans = start, now, plans
        self.demo = None  # (customer, subscription)
        self.subscription_ids: frozenset = frozenset()
        self.steps = [
            (start + timedelta(hours=2), self._demo_signs_up),
            (start + timedelta(days=45, hours=10), self._demo_upgrades),
            (start + timedelta(days=110, hours=15), self._demo_downgrades),
            (now - timedelta(days=10), self._dunning_signs_up),
            (now - timedelta(days=4), self._trial_signs_up),
            (now - timedelta(days=2), self._demo_goodwill_credit),
        ]

    def on(self, day: datetime, result: Seeded) -> None:
        while self.steps and self.steps[0][0] <= day + timedelta(days=1):
            when, step = self.steps.pop(0)
            step(min(when, self.now), result)
            drain()
        self._demo_usage(day)

    def _customer(self, email: str, name: str, when: datetime, *, card: str | None, result: Seeded):
        customer, _ = subs.register_customer(
            name=name, email=email, currency="EUR", country="DE", user=_login(email), clock=FixedClock(when)
        )
        result.customers += 1
        drain()  # Billing opens the account
        if card:
            billing.update_payment_method(customer_id=str(customer.pk), token=card, clock=FixedClock(when))
        return customer

    def _subscribe(self, customer, code: str, when: datetime, *, trial: bool, result: Seeded):
        sub = subs.subscribe(
            customer_id=customer.pk, plan_id=self.plans[code].pk, currency="EUR", trial=trial, clock=FixedClock(when)
        )
        result.subscriptions += 1
        self.subscription_ids = self.subscription_ids | {str(sub.pk)}
        return sub

    def _demo_signs_up(self, when: datetime, result: Seeded) -> None:
        from notifications import commands as notifications

        customer = self._customer("demo@example.com", "Demo Company GmbH", when, card="pm_card_visa", result=result)
        # The demo's receiver is this app's own /demo/webhook-receiver/ (allowed by
        # WEBHOOK_ALLOWED_ORIGINS, which `make run` sets to its own address): deliveries made while
        # the history is loaded wait for the web server, then succeed, signatures checked.
        url = f"{getattr(settings, 'DEMO_BASE_URL', 'http://127.0.0.1:8000').rstrip('/')}/demo/webhook-receiver/"
        previous = getattr(settings, "WEBHOOK_ALLOW_PRIVATE_NETWORKS", False)
        settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
        try:
            notifications.register_endpoint(
                url=url,
                events=["billing.InvoiceFinalized", "billing.PaymentSucceeded", "subscriptions.PlanChanged"],
                customer_id=str(customer.pk),
            )
        finally:
            settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = previous
        sub = self._subscribe(customer, "pro-monthly", when, trial=False, result=result)
        self.demo = (customer, sub)

    def _demo_usage(self, day: datetime) -> None:
        """About 3,600 API calls a day: roughly 108,000 a month against Pro's 100,000 included."""
        from subscriptions.commands import record_usage

        if self.demo is None:
            return
        at = day.replace(hour=12, minute=0, second=0)
        if at > self.now:
            return
        record_usage(
            [
                {
                    "subscription": str(self.demo[1].pk),
                    "metric": "api_calls",
                    "quantity": 3_400 + (day.toordinal() * 37) % 400,
                    "timestamp": at.isoformat(),
                    "idempotency_key": f"demo-{at:%Y-%m-%d}",
                }
            ]
        )

    def _demo_upgrades(self, when: datetime, result: Seeded) -> None:
        subs.change_plan(subscription_id=self.demo[1].pk, plan_id=self.plans["team-monthly"].pk, clock=FixedClock(when))

    def _demo_downgrades(self, when: datetime, result: Seeded) -> None:
        subs.change_plan(subscription_id=self.demo[1].pk, plan_id=self.plans["pro-monthly"].pk, clock=FixedClock(when))

    def _demo_goodwill_credit(self, when: datetime, result: Seeded) -> None:
        billing.grant_credit(
            customer_id=str(self.demo[0].pk),
            amount=Money("25.00", "EUR"),
            reason="Goodwill for last week's API slowdown",
            clock=FixedClock(when),
        )

    def _dunning_signs_up(self, when: datetime, result: Seeded) -> None:
        customer = self._customer(
            "dunning@example.com", "Late Payer AG", when, card="pm_card_chargeDeclined", result=result
        )
        self._subscribe(customer, "starter-monthly", when, trial=False, result=result)

    def _trial_signs_up(self, when: datetime, result: Seeded) -> None:
        customer = self._customer("trial@example.com", "Trying Things UG", when, card="pm_card_visa", result=result)
        self._subscribe(customer, "pro-monthly", when, trial=True, result=result)
