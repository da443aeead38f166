"""Commands on the Plan aggregate: define, revise (a new version), archive, restore."""

from __future__ import annotations

from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.errors import InvalidInput, NotFound
from sharedkernel.eventstore import save_and_publish
from subscriptions.models import Plan, PlanOverageRate, PlanPrice
from subscriptions.values import PlanTerms


def _save_plan(plan: Plan) -> None:
    version = plan.staged_version()  # reads the staged terms, so before they are taken
    staged = plan.staged_children()
    save_and_publish(plan)
    if version is not None:
        version.save()
    if staged is None:
        return
    prices, rates = staged
    PlanPrice.objects.filter(plan=plan).delete()
    PlanOverageRate.objects.filter(plan=plan).delete()
    PlanPrice.objects.bulk_create(PlanPrice(plan=plan, currency=p.currency, amount_minor=p.minor_units) for p in prices)
    PlanOverageRate.objects.bulk_create(
        PlanOverageRate(plan=plan, metric=metric, currency=r.currency, amount=r.amount)
        for metric, metric_rates in rates.items()
        for r in metric_rates
    )


@command(aggregate="Plan", records=("subscriptions.PlanCreated",))
def define_plan(*, code: str, tier: str, interval: str, clock: Clock | None = None, **terms) -> Plan:
    """DefinePlan → PlanCreated (version 1 of its terms). The code is unique.

    ``terms`` are the keywords of :class:`~subscriptions.values.PlanTerms`: ``name``, ``trial_days``,
    ``prices`` and, optionally, ``features``, ``included_usage``, ``overage_rates``."""
    if Plan.objects.filter(code=code).exists():
        raise InvalidInput("A plan with this code exists already.", details={"code": "already used"})
    at = (clock or clock_for(None)).now()
    plan = Plan.define(code=code, tier=tier, interval=interval, terms=PlanTerms(**terms), at=at)
    _save_plan(plan)
    return plan


@command(aggregate="Plan", records=("subscriptions.PlanUpdated",))
def revise_plan(*, plan_id: str, clock: Clock | None = None, **terms) -> Plan:
    """RevisePlan → PlanUpdated: a new version with complete terms (the keywords of
    :class:`~subscriptions.values.PlanTerms`); existing subscriptions keep theirs."""
    plan = load_plan(plan_id)
    plan.revise(PlanTerms(**terms), at=(clock or clock_for(None)).now())
    _save_plan(plan)
    return plan


@command(aggregate="Plan", records=("subscriptions.PlanArchived",))
def archive_plan(*, plan_id: str, clock: Clock | None = None) -> Plan:
    """ArchivePlan → PlanArchived: no longer offered to new subscriptions."""
    plan = load_plan(plan_id)
    plan.archive(at=(clock or clock_for(None)).now())
    _save_plan(plan)
    return plan


@command(aggregate="Plan", records=("subscriptions.PlanRestored",))
def restore_plan(*, plan_id: str, clock: Clock | None = None) -> Plan:
    """RestorePlan → PlanRestored: offered again."""
    plan = load_plan(plan_id)
    plan.restore(at=(clock or clock_for(None)).now())
    _save_plan(plan)
    return plan


def load_plan(plan_id) -> Plan:
    plan = Plan.objects.prefetch_related("price_rows", "overage_rows").filter(pk=plan_id).first()
    if plan is None:
        raise NotFound("No such plan.")
    return plan
