"""Adapters between contexts that only the composition root may write: it is the one place that
imports more than one context (contexts never import each other)."""

from __future__ import annotations

from billing.values import PlanChangeOutlook


class SubscriptionsPlanChangeRules:
    """Billing's PlanChangeRules port, answered by Subscriptions' PlanChangePolicy (through the
    same aggregate method ChangePlan runs)."""

    def outlook(self, *, subscription_id: str, plan_id: str) -> PlanChangeOutlook:
        from subscriptions.queries import plan_change_outlook

        answer = plan_change_outlook(subscription_id=subscription_id, plan_id=plan_id)
        return PlanChangeOutlook(
            refused_code=answer.refused_code, message=answer.message, needs_approval=answer.needs_approval
        )


def wire() -> None:
    from billing import ports

    ports.use_plan_change_rules(SubscriptionsPlanChangeRules())
