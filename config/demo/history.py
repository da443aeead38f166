"""Demo data with history, made the honest way.

Nothing is written behind the domain's back: the seeder calls the same
commands the API calls, at past moments (a FixedClock), and runs the same beat
jobs day by day from ``months`` ago until now, draining every event through
the real handlers in-process. What you see afterwards — trials that converted,
renewals, cancellations, suspensions — happened through the event chains.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from billing import commands as billing
from config.demo.catalogue import COUNTRIES, NAMES, billing_configuration, plans
from config.demo.logins import staff_login
from config.demo.receiver import base_url, serving
from config.demo.story import DemoStory, Seeded
from sharedkernel.bus import drain
from sharedkernel.clock import FixedClock
from sharedkernel.errors import DomainError
from sharedkernel.scheduling import JOBS, run_job
from subscriptions import commands as subs
from subscriptions.models import Plan


def seed(*, months: int = 6, customers: int = 36, seed_value: int = 7, base: str | None = None, log=print) -> Seeded:
    """Create plans and ``customers`` customers over the last ``months`` months. ``base`` is the
    address the demo will be served on (default ``DEMO_BASE_URL``): the demo customer's webhook
    endpoint is its receiver there, served by the seeder meanwhile (:mod:`config.demo.receiver`)."""
    rng = random.Random(seed_value)
    previous_mode = settings.EVENT_DISPATCH
    settings.EVENT_DISPATCH = "manual"  # handlers run here, in order, before the worker starts
    result = Seeded()
    try:
        with serving(base or base_url(), log=log) as webhook_url:
            _history(months, customers, rng, webhook_url, result)
    finally:
        settings.EVENT_DISPATCH = previous_mode
    log(
        f"Demo data: {result.plans} plans, {result.customers} customers, {result.subscriptions} subscriptions, "
        f"{result.days} days of history."
    )
    return result


def _history(months: int, customers: int, rng: random.Random, webhook_url: str, result: Seeded) -> None:
    now = timezone.now().replace(microsecond=0)
    start = now - timedelta(days=30 * months)
    catalogue = plans(start)
    billing_configuration()
    result.plans = len(catalogue)
    staff_login()
    story = DemoStory(start=start, now=now, plans={p.code: p for p in catalogue}, webhook_url=webhook_url)
    signups = sorted(
        start + timedelta(seconds=rng.randrange(int((now - start).total_seconds()))) for _ in range(customers)
    )
    day = start
    index = 0
    while day <= now:
        while index < len(signups) and signups[index] <= day:
            _sign_up(index, signups[index], catalogue, rng, None, result)
            index += 1
        story.on(day, result)
        _act_on_existing(day, rng, spare=story.subscription_ids)
        for name in JOBS:
            run_job(name, now=day)
        drain()
        result.days += 1
        day += timedelta(days=1)
    drain()


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
