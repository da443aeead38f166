"""The scripted history of the three customers whose logins the demo prints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from billing import commands as billing
from config.demo.logins import customer_login
from sharedkernel.bus import drain
from sharedkernel.clock import FixedClock
from sharedkernel.values import Money
from subscriptions import commands as subs


@dataclass
class Seeded:
    """What a seed made."""

    plans: int = 0
    customers: int = 0
    subscriptions: int = 0
    days: int = 0


class DemoStory:
    """The three customers whose logins the demo prints, each with a scripted history that shows
    what the product does. Everything goes through the real commands, at past moments.

    * demo@example.com (Germany, EUR, card that pays): Pro from the first day, reporting usage
      over Pro's included API calls every day; an upgrade to Team (a prorated invoice), later a
      downgrade back to Pro (credit for the unused part), a goodwill credit from staff, and a
      webhook endpoint that receives its invoice and payment events.
    * trial@example.com: started a Pro trial a few days ago.
    * dunning@example.com: subscribed to Starter ten days ago with a card that is declined.
    """

    def __init__(self, *, start: datetime, now: datetime, plans: dict, webhook_url: str):
        self.start, self.now, self.plans, self.webhook_url = start, now, plans, webhook_url
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
            name=name, email=email, currency="EUR", country="DE", user=customer_login(email), clock=FixedClock(when)
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
        # the app's own receiver, served and allowed past the address guard while the seed runs
        notifications.register_endpoint(
            url=self.webhook_url,
            events=["billing.InvoiceFinalized", "billing.PaymentSucceeded", "subscriptions.PlanChanged"],
            customer_id=str(customer.pk),
        )
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
