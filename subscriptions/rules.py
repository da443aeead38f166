"""Domain rules of the Subscriptions context that span more than one object.

:class:`PlanChangePolicy` is the domain service the blueprint names: may this
subscription move to that plan, and in which direction? The errors below are
what the API answers with 409 and their ``code``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from sharedkernel.errors import DomainError
from sharedkernel.values import Money
from subscriptions.values import BillingInterval, PlanTier


class SamePlan(DomainError):
    code = "same_plan"


class DowngradeDuringTrial(DomainError):
    code = "downgrade_during_trial"


class PlanUnavailable(DomainError):
    code = "plan_unavailable"


class CurrencyNotOffered(DomainError):
    code = "currency_not_offered"


class TrialNotAvailable(DomainError):
    code = "trial_not_available"


class AlreadySubscribed(DomainError):
    code = "already_subscribed"


class NoPendingPlanChange(DomainError):
    code = "no_pending_plan_change"


class Direction(StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"


@dataclass(frozen=True, slots=True)
class PlanOption:
    """What the policy needs to know about a plan at a price."""

    plan_id: str
    tier: PlanTier
    interval: BillingInterval
    price: Money

    @property
    def monthly_price(self) -> Decimal:
        return self.price.amount / self.interval.months


@dataclass(frozen=True, slots=True)
class PlanChangeDecision:
    direction: Direction
    needs_approval: bool


class PlanChangePolicy:
    """Whether a subscription may move from ``current`` to ``target``.

    * not to the plan it is already on (``same_plan``);
    * no downgrade while trialing (``downgrade_during_trial``) — a downgrade is
      a lower tier, or the same tier at a lower monthly price;
    * a move to the enterprise tier needs staff approval unless staff make it.
    """

    def decide(
        self, *, current: PlanOption, target: PlanOption, trialing: bool, approved_by_staff: bool
    ) -> PlanChangeDecision:
        if current.plan_id == target.plan_id:
            raise SamePlan("The subscription is already on this plan.")
        direction = self.direction(current, target)
        if trialing and direction is Direction.DOWNGRADE:
            raise DowngradeDuringTrial(
                "You cannot downgrade during a trial; downgrade after the trial or cancel it instead."
            )
        needs_approval = target.tier.requires_approval and not approved_by_staff
        return PlanChangeDecision(direction=direction, needs_approval=needs_approval)

    @staticmethod
    def direction(current: PlanOption, target: PlanOption) -> Direction:
        if target.tier.rank != current.tier.rank:
            return Direction.UPGRADE if target.tier.rank > current.tier.rank else Direction.DOWNGRADE
        return Direction.DOWNGRADE if target.monthly_price < current.monthly_price else Direction.UPGRADE
