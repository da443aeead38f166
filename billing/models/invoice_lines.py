"""InvoiceLine: a line of an invoice (a child of the Invoice aggregate), and how an event names it."""

from __future__ import annotations

from django.db import models

from billing import events as ev
from billing.values import LineKind
from sharedkernel.values import money_from_minor


class InvoiceLine(models.Model):
    """A line of an invoice. Written once, with the invoice; never changed."""

    id = models.BigAutoField(primary_key=True)
    invoice = models.ForeignKey("billing.Invoice", on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=20, choices=[(k.value, k.value) for k in LineKind])
    description = models.CharField(max_length=300)
    amount_minor = models.BigIntegerField()
    quantity = models.BigIntegerField(null=True, blank=True)
    metric = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="one_line_per_position")]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"

    amount = money_from_minor("amount_minor", currency="invoice.currency")


def line_ref(line: InvoiceLine) -> ev.InvoiceLineRef:
    return ev.InvoiceLineRef(
        description=line.description,
        kind=line.kind,
        amount=line.amount,
        quantity=line.quantity,
        metric=line.metric or None,
    )
