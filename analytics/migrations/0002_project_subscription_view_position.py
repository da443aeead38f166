"""SubscriptionView remembers the position of the last of its subscription's events it applied.

Existing rows are marked up to date with the last event of their subscription, so a
redelivery or a replay without --reset stays a no-op. Rows built before may have dropped
an event that shared a version with the one before (a trial cancelled at its expiry still
"trialing"): rebuild them with ``manage.py replay_events --context analytics --reset``.
"""

from django.db import migrations, models
from django.db.models import Max


def mark_up_to_date(apps, schema_editor):
    SubscriptionView = apps.get_model("analytics", "SubscriptionView")
    StoredEvent = apps.get_model("sharedkernel", "StoredEvent")
    views = list(SubscriptionView.objects.only("subscription_id"))
    if not views:
        return
    last = dict(
        StoredEvent.objects.filter(aggregate_type="Subscription")
        .values("aggregate_id")
        .annotate(last=Max("position"))
        .values_list("aggregate_id", "last")
    )
    for view in views:
        view.last_position = last.get(str(view.subscription_id), 0)
    SubscriptionView.objects.bulk_update(views, ["last_position"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_initial"),
        ("sharedkernel", "0002_leaner_event_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscriptionview",
            name="last_position",
            field=models.BigIntegerField(
                default=0,
                help_text="Event-store position of the last event of this aggregate applied here (0: none).",
            ),
        ),
        migrations.RunPython(mark_up_to_date, migrations.RunPython.noop),
    ]
