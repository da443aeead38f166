"""BilledSubscription remembers the position of the last subscription event it applied.

Rows from before were ordered by aggregate version and may have dropped an event
that shared its version with the one before (a converted trial kept its trial
period). The backfill re-applies each row's subscription events from the event
store in position order — the fields Billing's projection keeps, last writer wins —
and leaves the row at the last one's position. Self-contained on purpose: a
migration must not depend on application code that changes later.
"""

from datetime import datetime

from django.db import migrations, models

SUBSCRIPTION_EVENTS = (
    "subscriptions.SubscriptionCreated",
    "subscriptions.SubscriptionActivated",
    "subscriptions.SubscriptionSuspended",
    "subscriptions.SubscriptionResumed",
    "subscriptions.SubscriptionRenewed",
    "subscriptions.SubscriptionCancelled",
    "subscriptions.PlanChanged",
    "subscriptions.TrialExpired",
)


def _minor(money: dict) -> int:
    from sharedkernel.values import Money  # the shared kernel's Money is stable vocabulary

    return Money(money["amount"], money["currency"]).minor_units


def reproject(apps, schema_editor):
    BilledSubscription = apps.get_model("billing", "BilledSubscription")
    StoredEvent = apps.get_model("sharedkernel", "StoredEvent")
    rows = {str(row.subscription_id): row for row in BilledSubscription.objects.all()}
    if not rows:
        return
    events = (
        StoredEvent.objects.filter(event_type__in=SUBSCRIPTION_EVENTS)
        .order_by("position")
        .values_list("position", "aggregate_id", "aggregate_version", "payload")
    )
    touched = set()
    for position, aggregate_id, version, payload in events.iterator(chunk_size=2000):
        row = rows.get(aggregate_id)
        if row is None:
            continue
        plan = payload["plan"]
        row.plan_id, row.plan_name, row.plan_code, row.interval = plan["id"], plan["name"], plan["code"], plan["interval"]
        row.status = payload["status"]
        price = payload.get("price") or payload.get("new_price")
        if price:
            row.currency, row.price_minor = price["currency"], _minor(price)
        period = payload.get("new_period") or payload.get("period")
        if period:
            row.period_start = datetime.fromisoformat(period["start"])
            row.period_end = datetime.fromisoformat(period["end"])
        row.source_version, row.source_position = version, position
        touched.add(aggregate_id)
    fields = ["plan_id", "plan_name", "plan_code", "interval", "status", "currency", "price_minor"]
    BilledSubscription.objects.bulk_update(
        [rows[key] for key in touched],
        [*fields, "period_start", "period_end", "source_version", "source_position"],
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_charge_in_flight_attempts"),
        ("sharedkernel", "0002_leaner_event_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="billedsubscription",
            name="source_position",
            field=models.BigIntegerField(
                default=0,
                help_text="Event-store position of the last event of this aggregate applied here (0: none).",
            ),
        ),
        migrations.RunPython(reproject, migrations.RunPython.noop),
    ]
