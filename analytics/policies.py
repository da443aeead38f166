"""Projections of the Analytics context: events in, denormalised views out. Nothing writes back.

Every handler here is replay-safe: ``replay_events --context analytics --reset``
empties the tables and rebuilds them from the event store in order.
"""

from __future__ import annotations

from functools import partial, singledispatch

from analytics import acl
from analytics.models import CustomerName, MrrMovement, MrrSnapshot, RevenueEntry, SubscriptionView, monthly
from analytics.vocabulary import RevenueKind, Status
from sharedkernel.bulk import bulk_update_rows, insert_rows
from sharedkernel.bus import LARGE_BATCH, reacts_to
from sharedkernel.events import DomainEvent
from sharedkernel.projection import AppliedPosition, in_stored_order
from sharedkernel.values import Money

#: What a subscription's view is built from, in stored order: one projection, because the view's
#: figures depend on the order of its events across both contexts (a coupon, then a renewal).
SUBSCRIPTION_EVENTS = tuple(acl.SUBSCRIPTION_FACTS)


#: How the batch projections here subscribe: a bill run's worth of events at a time, replay-safe,
#: each with the ``reset`` that empties what it builds.
reacts_as_batch_projection = partial(reacts_to, batch=True, batch_size=LARGE_BATCH, replay_safe=True)


def _reset_subscriptions() -> None:
    MrrMovement.objects.all().delete()
    MrrSnapshot.objects.all().delete()
    SubscriptionView.objects.all().delete()


def contribution(view: SubscriptionView) -> int:
    """What the subscription adds to MRR now: 0 unless active; discounts reduce it."""
    if view.status != Status.ACTIVE:
        return 0
    amount = monthly(Money.from_minor(view.price_minor, view.currency), view.interval)
    discounted = view.discount_periods_left is None or view.discount_periods_left > 0
    if discounted and view.percent_off is not None:
        amount = amount - Money.rounded(amount.amount * view.percent_off / 100, amount.currency)
    elif discounted and view.amount_off_minor is not None:
        off = Money.from_minor(view.amount_off_minor, view.currency)
        amount = amount - min(monthly(off, view.interval), amount)
    return amount.minor_units


#: A view applies its subscription's own events in stored order, once (sharedkernel.projection).
APPLIED = AppliedPosition("last_position")


@singledispatch
def _apply(fact, view: SubscriptionView | None, event: DomainEvent) -> SubscriptionView | None:
    """What one fact (analytics.acl) changes in its subscription's view; None: not ours (yet)."""
    raise TypeError(f"No rule for {type(fact).__name__}")


@_apply.register
def _(fact: acl.SubscriptionChanged, view: SubscriptionView | None, event: DomainEvent) -> SubscriptionView | None:
    plan = fact.plan
    if view is None:
        if not fact.created:
            return None  # not ours yet (or an event older than the projection): nothing to count
        return SubscriptionView(
            subscription_id=fact.subscription_id,
            customer_id=fact.customer_id,
            plan_id=plan.id,
            plan_name=plan.name,
            tier=plan.tier,
            interval=plan.interval,
            currency=fact.price.currency,
            price_minor=fact.price.minor_units,
            status=fact.status,
            started_at=event.occurred_on,
            last_version=event.aggregate_version,
            last_position=event.position,
        )
    if not APPLIED.take(view, event):
        return view
    view.last_version = event.aggregate_version
    if fact.old_price is not None and monthly(fact.price, plan.interval) < monthly(fact.old_price, fact.old_interval):
        view.downgrades += 1
    if fact.price:
        view.price_minor = fact.price.minor_units
    view.plan_id, view.plan_name, view.tier, view.interval = plan.id, plan.name, plan.tier, plan.interval
    view.status = fact.status
    if view.status == Status.ACTIVE and view.activated_at is None:
        view.activated_at = event.occurred_on
    if fact.cancelled:
        view.cancelled_at = event.occurred_on
    if fact.renewed:
        view.usage_last_period, view.usage_this_period = view.usage_this_period, 0
        if view.discount_periods_left:
            view.discount_periods_left -= 1
    if fact.resumed:
        view.dunning_level = 0
    return view


@_apply.register
def _(fact: acl.DiscountApplied, view: SubscriptionView | None, event: DomainEvent) -> SubscriptionView | None:
    if view is not None:
        view.percent_off = fact.percent_off
        view.amount_off_minor = fact.amount_off.minor_units if fact.amount_off else None
        view.discount_periods_left = fact.periods
    return view


@_apply.register
def _(fact: acl.PaymentFailed, view: SubscriptionView | None, event: DomainEvent) -> SubscriptionView | None:
    if view is not None:
        view.failed_payments += 1
    return view


@_apply.register
def _(fact: acl.PaymentSucceeded, view: SubscriptionView | None, event: DomainEvent) -> SubscriptionView | None:
    if view is not None:
        view.dunning_level = 0
    return view


@_apply.register
def _(fact: acl.DunningLevel, view: SubscriptionView | None, event: DomainEvent) -> SubscriptionView | None:
    if view is not None:
        view.dunning_level = fact.level or view.dunning_level + 1
    return view


def _movement_kind(old: int, new: int, ever: bool, price_migrated: bool = False) -> str:
    if old == 0:
        return MrrMovement.Kind.REACTIVATION if ever else MrrMovement.Kind.NEW
    if new == 0:
        return MrrMovement.Kind.CHURNED
    if price_migrated:
        return MrrMovement.Kind.PRICE_CHANGE  # a migration's change is its own movement, not expansion
    return MrrMovement.Kind.EXPANSION if new > old else MrrMovement.Kind.CONTRACTION


@reacts_as_batch_projection(*SUBSCRIPTION_EVENTS, reset=_reset_subscriptions, read_your_writes=True)
def project_subscriptions(events: list[DomainEvent]) -> None:
    """SubscriptionAnalyticsView and MRR movements, one locked read and a few bulk writes per batch."""
    facts = [(event, acl.subscription_fact(event)) for event in in_stored_order(events)]
    ids = {getattr(fact, "subscription_id", None) for _, fact in facts} - {None}
    views = {
        str(v.subscription_id): v
        for v in SubscriptionView.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    }
    existing = set(views)
    movements, usage = [], {}
    for event, fact in facts:
        if isinstance(fact, acl.UsageRecorded):
            for sub_id, quantity in fact.quantities.items():
                usage[sub_id] = usage.get(sub_id, 0) + quantity
            continue
        sub_id = fact.subscription_id
        view = _apply(fact, views.get(sub_id), event)
        if view is None:
            continue
        views[sub_id] = view
        new = contribution(view)
        if new != view.mrr_minor:
            movements.append(
                MrrMovement(
                    day=event.occurred_on.date(),
                    currency=view.currency,
                    kind=_movement_kind(
                        view.mrr_minor, new, view.ever_contributed, getattr(fact, "price_migrated", False)
                    ),
                    amount_minor=new - view.mrr_minor,
                    subscription_id=view.subscription_id,
                    event_position=event.position or 0,
                )
            )
            view.mrr_minor = new
            view.ever_contributed = view.ever_contributed or new > 0
    for sub_id, quantity in usage.items():
        if sub_id in views:
            views[sub_id].usage_this_period += quantity
    insert_rows([v for k, v in views.items() if k not in existing])
    fields = [f.name for f in SubscriptionView._meta.concrete_fields if not f.primary_key]
    bulk_update_rows([v for k, v in views.items() if k in existing], fields)
    insert_rows(movements)


def _revenue_entry(event: DomainEvent, moved: acl.MoneyMoved) -> RevenueEntry:
    sign = -1 if moved.kind == RevenueKind.REFUND else 1
    return RevenueEntry(
        day=moved.on.date(),
        currency=moved.amount.currency,
        plan_name=moved.plan_name or "(no plan)",
        amount_minor=sign * moved.amount.minor_units,
        kind=moved.kind,
        event_id=event.event_id,
    )


#: The one handler the two revenue projections were split from (open deliveries come to them).
REVENUE = ("analytics.project_revenue",)


def _reset_payments() -> None:
    RevenueEntry.objects.filter(kind=RevenueKind.PAYMENT).delete()


@reacts_as_batch_projection("billing.PaymentSucceeded", reset=_reset_payments, replaces=REVENUE)
def record_payment_revenue(events: list[DomainEvent]) -> None:
    """PaymentSucceeded → a revenue entry (none for an invoice paid entirely by credit: no money came in)."""
    moved = [(event, acl.payment_received(event.payload)) for event in events]
    entries = [_revenue_entry(event, m) for event, m in moved if m.amount.is_positive()]
    RevenueEntry.objects.bulk_create(entries, ignore_conflicts=True)


def _reset_refunds() -> None:
    RevenueEntry.objects.filter(kind=RevenueKind.REFUND).delete()


@reacts_as_batch_projection("billing.RefundIssued", reset=_reset_refunds, replaces=REVENUE)
def record_refund_revenue(events: list[DomainEvent]) -> None:
    """RefundIssued → a negative revenue entry."""
    entries = [_revenue_entry(event, acl.refund_issued(event.payload)) for event in events]
    RevenueEntry.objects.bulk_create(entries, ignore_conflicts=True)


def _reset_customer_names() -> None:
    CustomerName.objects.all().delete()


@reacts_to("subscriptions.CustomerRegistered", replay_safe=True, reset=_reset_customer_names)
def project_customer_names(event: DomainEvent) -> None:
    """CustomerRegistered → CustomerName: the name staff tables show for a customer."""
    fact = acl.customer_registered(event.payload)
    CustomerName.objects.update_or_create(
        customer_id=fact.customer_id, defaults={"name": fact.name, "email": fact.email}
    )
