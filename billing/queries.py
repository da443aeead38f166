"""Read models of the Billing context that combine its own data with another context's answer
(through a port), so a page and the API ask one function instead of repeating the rule."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from billing import commands, ports
from billing.models import BillingPlan
from billing.proration import Proration
from sharedkernel.errors import DomainError, InvalidInput


@dataclass(frozen=True)
class PlanChangePreview:
    """What changing plan now would do: the proration charged or credited at once, or nothing
    yet because the change waits for staff approval (``proration`` is then None)."""

    proration: Proration | None
    needs_approval: bool = False
    message: str = ""


def plan_change_preview(*, subscription_id: str, plan_id: str, at: datetime | None = None) -> PlanChangePreview:
    """The one answer to "what if I change to that plan now?" for the customer page and the API.

    Subscriptions' PlanChangePolicy first (through the PlanChangeRules port): a change the
    ChangePlan command would refuse raises the DomainError with the command's code
    (``downgrade_during_trial``, ``same_plan``, ...), so a preview never offers what the command
    refuses. A change that needs staff approval charges nothing now (the proration is computed
    when staff approve). Otherwise Billing's one proration."""
    try:
        plan_id = str(uuid.UUID(str(plan_id)))
    except ValueError:
        raise InvalidInput("The plan is a plan id (a UUID).", details={"plan": "not a plan id"}) from None
    rules = ports.plan_change_rules()
    outlook = rules.outlook(subscription_id=str(subscription_id), plan_id=plan_id) if rules else None
    # "not_found" from Subscriptions: Billing's own lookups below answer with their own 404/400
    if outlook is not None and outlook.refused and outlook.refused_code != "not_found":
        raise DomainError(outlook.message, code=outlook.refused_code)
    proration = commands.preview_plan_change(subscription_id=str(subscription_id), plan_id=plan_id, at=at)
    if outlook is not None and outlook.needs_approval:
        name = BillingPlan.objects.filter(pk=plan_id).values_list("name", flat=True).first() or "This plan"
        return PlanChangePreview(
            proration=None,
            needs_approval=True,
            message=f"{name} needs staff approval: nothing changes or is charged until staff approve the change.",
        )
    return PlanChangePreview(proration=proration)
