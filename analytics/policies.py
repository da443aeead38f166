"""Projections of the Analytics context: events in, denormalised views out. Nothing writes back.

Every handler here is replay-safe: ``replay_events --context analytics --reset``
empties the tables and rebuilds them from the event store in order.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from analytics.models import CustomerName, MrrMovement, MrrSnapshot, RevenueEntry, SubscriptionView, monthly
from sharedkernel.bulk import bulk_update_rows, insert_rows
from sharedkernel.bus import LARGE_BATCH, reacts_to
from sharedkernel.events import DomainEvent
from sharedkernel.projection import AppliedPosition, in_stored_order
from sharedkernel.values import Money

SUBSCRIPTION_EVENTS = (
    "subscriptions.SubscriptionCreated",
    "subscriptions.SubscriptionActivated",
    "subscriptions.SubscriptionSuspended",
    "subscriptions.SubscriptionResumed",
    "subscriptions.SubscriptionRenewed",
    "subscriptions.SubscriptionCancelled",
    "subscriptions.PlanChanged",
    "subscriptions.PriceChanged",
    "subscriptions.TrialExpired",
    "billing.CouponRedeemed",
    "billing.PaymentFailed",
    "billing.PaymentSucceeded",
    "billing.DunningEscalated",
    "billing.DunningExhausted",
    "subscriptions.UsageRecorded",
)


def _reset_subscriptions() -> None:
    MrrMovement.objects.all().delete()
    MrrSnapshot.objects.all().delete()
    SubscriptionView.objects.all().delete()


def contribution(view: SubscriptionView) -> int:
    """What the subscription adds to MRR now: 0 unless active; discounts reduce it."""
    if view.status != "active":
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


def _apply(view: SubscriptionView | None, event: DomainEvent) -> SubscriptionView | None:
    p = event.payload
    name = event.name
    if name == "UsageRecorded":
        return view
    if view is None:
        if name != "SubscriptionCreated":
            return None  # not ours yet (or an event older than the projection): nothing to count
        plan = p["plan"]
        price = Money.from_json(p["price"])
        return SubscriptionView(
            subscription_id=p["subscription_id"],
            customer_id=p["customer_id"],
            plan_id=plan["id"],
            plan_name=plan["name"],
            tier=plan["tier"],
            interval=plan["interval"],
            currency=price.currency,
            price_minor=price.minor_units,
            status=p["status"],
            started_at=event.occurred_on,
            last_version=event.aggregate_version,
            last_position=event.position,
        )
    if event.context == "subscriptions":
        if not APPLIED.take(view, event):
            return view
        view.last_version = event.aggregate_version
        plan = p["plan"]
        if name == "PlanChanged":
            new, old = Money.from_json(p["new_price"]), Money.from_json(p["old_price"])
            if monthly(new, plan["interval"]) < monthly(old, p["old_plan"]["interval"]):
                view.downgrades += 1
        price = p.get("price") or p.get("new_price")
        if price:
            view.price_minor = Money.from_json(price).minor_units
        view.plan_id, view.plan_name, view.tier, view.interval = (
            plan["id"],
            plan["name"],
            plan["tier"],
            plan["interval"],
        )
        view.status = p["status"]
        if view.status == "active" and view.activated_at is None:
            view.activated_at = event.occurred_on
        if name == "SubscriptionCancelled":
            view.cancelled_at = event.occurred_on
        if name == "SubscriptionRenewed":
            view.usage_last_period, view.usage_this_period = view.usage_this_period, 0
            if view.discount_periods_left:
                view.discount_periods_left -= 1
        if name in ("SubscriptionResumed",):
            view.dunning_level = 0
    elif name == "CouponRedeemed":
        view.percent_off = Decimal(p["percent_off"]) if p.get("percent_off") is not None else None
        view.amount_off_minor = Money.from_json(p["amount_off"]).minor_units if p.get("amount_off") else None
        view.discount_periods_left = {"once": 1, "forever": None}.get(p["duration"], p.get("duration_in_periods"))
    elif name == "PaymentFailed":
        view.failed_payments += 1
    elif name == "PaymentSucceeded":
        view.dunning_level = 0
    elif name in ("DunningEscalated", "DunningExhausted"):
        view.dunning_level = int(p.get("level") or view.dunning_level + 1)
    return view


def _movement_kind(old: int, new: int, ever: bool, event: str = "") -> str:
    if old == 0:
        return MrrMovement.Kind.REACTIVATION if ever else MrrMovement.Kind.NEW
    if new == 0:
        return MrrMovement.Kind.CHURNED
    if event == "PriceChanged":
        return MrrMovement.Kind.PRICE_CHANGE  # a migration's change is its own movement, not expansion
    return MrrMovement.Kind.EXPANSION if new > old else MrrMovement.Kind.CONTRACTION


@reacts_to(
    *SUBSCRIPTION_EVENTS,
    batch=True,
    batch_size=LARGE_BATCH,
    replay_safe=True,
    reset=_reset_subscriptions,
    read_your_writes=True,
)
def project_subscriptions(events: list[DomainEvent]) -> None:
    """SubscriptionAnalyticsView and MRR movements, one locked read and a few bulk writes per batch."""
    ids = {e.payload.get("subscription_id") for e in events} - {None}
    views = {str(v.subscription_id): v for v in SubscriptionView.objects.select_for_update().filter(pk__in=ids)}
    existing = set(views)
    movements, usage = [], {}
    for event in in_stored_order(events):
        if event.name == "UsageRecorded":
            for total in event.payload["totals"]:
                usage[total["subscription_id"]] = usage.get(total["subscription_id"], 0) + int(total["quantity"])
            continue
        sub_id = event.payload.get("subscription_id")
        view = _apply(views.get(sub_id), event)
        if view is None:
            continue
        views[sub_id] = view
        new = contribution(view)
        if new != view.mrr_minor:
            movements.append(
                MrrMovement(
                    day=event.occurred_on.date(),
                    currency=view.currency,
                    kind=_movement_kind(view.mrr_minor, new, view.ever_contributed, event.name),
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


def _reset_revenue() -> None:
    RevenueEntry.objects.all().delete()


@reacts_to(
    "billing.PaymentSucceeded",
    "billing.RefundIssued",
    batch=True,
    batch_size=LARGE_BATCH,
    replay_safe=True,
    reset=_reset_revenue,
)
def project_revenue(events: list[DomainEvent]) -> None:
    entries = []
    for event in events:
        amount = Money.from_json(event.payload["amount"])
        if event.name == "PaymentSucceeded" and not amount.is_positive():
            continue  # paid entirely by credit: no money came in
        sign = -1 if event.name == "RefundIssued" else 1
        entries.append(
            RevenueEntry(
                day=datetime.fromisoformat(event.payload.get("paid_at") or event.payload.get("refunded_at")).date(),
                currency=amount.currency,
                plan_name=event.payload.get("plan_name") or "(no plan)",
                amount_minor=sign * amount.minor_units,
                kind="refund" if sign < 0 else "payment",
                event_id=event.event_id,
            )
        )
    RevenueEntry.objects.bulk_create(entries, ignore_conflicts=True)


def _reset_customer_names() -> None:
    CustomerName.objects.all().delete()


@reacts_to("subscriptions.CustomerRegistered", replay_safe=True, reset=_reset_customer_names)
def project_customer_names(event: DomainEvent) -> None:
    """CustomerRegistered → CustomerName: the name staff tables show for a customer."""
    p = event.payload
    CustomerName.objects.update_or_create(
        customer_id=p["customer_id"], defaults={"name": p["name"], "email": str(p.get("email") or "")}
    )
