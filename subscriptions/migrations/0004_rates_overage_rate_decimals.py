"""Overage rates become exact unit rates of up to 6 decimals (API.md, Money: unit rates).

Rows written before kept the rate in the currency's minor unit (``amount_minor``, cents);
each becomes the same decimal amount (``150`` USD cents → ``1.500000``), so every plan keeps
its rates. Going back rounds half-up to the minor unit (a finer rate cannot be kept).
"""

from decimal import ROUND_HALF_UP, Decimal

from django.db import migrations, models

from sharedkernel.values import minor_digits


def rate_from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-minor_digits(currency))


def minor_from_rate(amount: Decimal, currency: str) -> int:
    return int(amount.scaleb(minor_digits(currency)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def forwards(apps, schema_editor):
    Rate = apps.get_model("subscriptions", "PlanOverageRate")
    rows = list(Rate.objects.all())
    for row in rows:
        row.amount = rate_from_minor(row.amount_minor, row.currency)
    Rate.objects.bulk_update(rows, ["amount"], batch_size=1000)


def backwards(apps, schema_editor):
    Rate = apps.get_model("subscriptions", "PlanOverageRate")
    rows = list(Rate.objects.all())
    for row in rows:
        row.amount_minor = minor_from_rate(row.amount, row.currency)
    Rate.objects.bulk_update(rows, ["amount_minor"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [
        ("subscriptions", "0003_renewal_order_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="planoveragerate",
            name="amount",
            field=models.DecimalField(decimal_places=6, max_digits=18, null=True),
        ),
        migrations.AlterField(
            model_name="planoveragerate",
            name="amount_minor",
            field=models.BigIntegerField(null=True),
        ),
        migrations.RunPython(forwards, backwards),
        migrations.RemoveField(
            model_name="planoveragerate",
            name="amount_minor",
        ),
        migrations.AlterField(
            model_name="planoveragerate",
            name="amount",
            field=models.DecimalField(
                decimal_places=6,
                help_text="Price per unit over the included quantity, up to 6 decimals.",
                max_digits=18,
            ),
        ),
    ]
