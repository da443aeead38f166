"""PaymentAttempt: one charge sent to the gateway, with its answer as received (a child of Payment)."""

from __future__ import annotations

from django.db import models

from billing.models.payment_states import AttemptTrigger


class PaymentAttempt(models.Model):
    """One charge sent to the gateway, with its answer as received."""

    id = models.BigAutoField(primary_key=True)
    payment = models.ForeignKey("billing.Payment", on_delete=models.PROTECT, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=20, choices=AttemptTrigger.choices)
    at = models.DateTimeField()
    outcome = models.CharField(max_length=20)
    amount_minor = models.BigIntegerField()
    payment_method = models.CharField(max_length=60, blank=True)
    gateway_reference = models.CharField(max_length=100, blank=True)
    failure_code = models.CharField(max_length=50, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    raw = models.JSONField(default=dict, blank=True)

    #: What an attempt shows, in this order, to integrators (the API) and to staff (the admin, who
    #: also see ``raw``): the charge and the gateway's answer.
    SHOWN_FIELDS = (
        "number",
        "trigger",
        "at",
        "outcome",
        "payment_method",
        "gateway_reference",
        "failure_code",
        "failure_message",
    )

    class Meta:
        ordering = ["payment", "number"]
        constraints = [models.UniqueConstraint(fields=["payment", "number"], name="one_row_per_attempt")]

    def __str__(self) -> str:
        return f"Attempt {self.number}: {self.outcome}"
