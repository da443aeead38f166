"""BilledSubscription keeps the billing anchor, so the upcoming invoice follows the subscription's
period rule (sharedkernel.periods) instead of adding a month to the period's end.

Subscription events now publish the anchor in their periods. For rows built from events stored
before, the backfill finds it in the history the way Subscriptions set it: a new grid starts at
the first paid period of a subscription (the trial's end for a trial), when a suspended one
resumes into a new period, and when a plan change switches the interval outside a trial.
"""

from datetime import datetime

from django.db import migrations, models

GRID_EVENTS = (
    "subscriptions.SubscriptionCreated",
    "subscriptions.SubscriptionActivated",
    "subscriptions.SubscriptionResumed",
    "subscriptions.SubscriptionRenewed",
    "subscriptions.PlanChanged",
)


def _anchor(event_type: str, p: dict) -> str | None:
    period = p.get("new_period") or p.get("period") or {}
    if period.get("anchor"):
        return period["anchor"]
    if event_type == "subscriptions.SubscriptionCreated":
        return p.get("trial_end") or period.get("start")
    if event_type == "subscriptions.SubscriptionActivated" and p.get("reason") == "trial_converted":
        return period.get("start")
    if event_type == "subscriptions.SubscriptionResumed" and p.get("period_restarted"):
        return period.get("start")
    changed_interval = p.get("old_plan", {}).get("interval") != p.get("plan", {}).get("interval")
    if event_type == "subscriptions.PlanChanged" and changed_interval and not p.get("in_trial"):
        return period.get("start")
    return None


def backfill(apps, schema_editor):
    BilledSubscription = apps.get_model("billing", "BilledSubscription")
    StoredEvent = apps.get_model("sharedkernel", "StoredEvent")
    rows = {str(row.subscription_id): row for row in BilledSubscription.objects.filter(billing_anchor__isnull=True)}
    if not rows:
        return
    events = (
        StoredEvent.objects.filter(event_type__in=GRID_EVENTS, aggregate_type="Subscription")
        .order_by("position")
        .values_list("aggregate_id", "event_type", "payload")
    )
    for aggregate_id, event_type, payload in events.iterator(chunk_size=2000):
        row = rows.get(aggregate_id)
        anchor = _anchor(event_type, payload) if row is not None else None
        if anchor:
            row.billing_anchor = datetime.fromisoformat(anchor)
    BilledSubscription.objects.bulk_update(list(rows.values()), ["billing_anchor"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_project_billed_subscription_position"),
    ]

    operations = [
        migrations.AddField(
            model_name="billedsubscription",
            name="billing_anchor",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
