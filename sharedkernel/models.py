"""Tables of the event plumbing. No business data lives here.

* :class:`StoredEvent` — the event store and transactional outbox: append-only,
  global ``position`` order, written in the same transaction as the aggregate.
* :class:`EventDelivery` — one row per (event, subscribed handler). It is both
  the delivery tracker the relay sweeps and the handler's idempotency ledger:
  a handler marks its row ``done`` in the same transaction as its effect, so a
  second delivery of the same event finds nothing left to do.
* :class:`TestClock` — a Stripe-like frozen clock customers can live on.
* :class:`IdempotencyRecord` — first response to a POST with an Idempotency-Key.
* :class:`Heartbeat` — liveness of beat, for /healthz.
* :class:`CustomerLogin` — which customer a login acts for (API scoping).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("The event store is append-only: stored events are never updated.")

    def delete(self):
        raise TypeError("The event store is append-only: stored events are never deleted.")


class StoredEvent(models.Model):
    position = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=100, db_index=True)
    event_version = models.PositiveSmallIntegerField(default=1)
    occurred_on = models.DateTimeField()
    recorded_at = models.DateTimeField(default=timezone.now)
    aggregate_type = models.CharField(max_length=60)
    aggregate_id = models.CharField(max_length=64)
    aggregate_version = models.PositiveIntegerField(default=0)
    payload = models.JSONField()
    correlation_id = models.CharField(max_length=64)
    causation_id = models.CharField(max_length=64, null=True, blank=True)
    test_clock_id = models.UUIDField(null=True, blank=True, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["position"]
        verbose_name = "stored event"
        # Exact lookups only (history of an aggregate, a correlated chain, an event's consequences): plain btrees, without the
        # LIKE-pattern twins db_index adds on PostgreSQL — every append writes every index.
        indexes = [
            models.Index(fields=["aggregate_id"], name="event_aggregate"),
            models.Index(fields=["correlation_id"], name="event_correlation"),
            # What an event caused (a subscription's timeline walks it: sharedkernel.lineage).
            models.Index(fields=["causation_id"], name="event_causation"),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.event_type} {self.aggregate_type}:{self.aggregate_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("The event store is append-only: stored events are never updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("The event store is append-only: stored events are never deleted.")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    RETRYING = "retrying", "Retrying after a failure"
    DONE = "done"
    FAILED = "failed", "Failed (attempts exhausted)"
    #: The handler needs an upstream fact that has not arrived yet (``waiting_for`` says which).
    WAITING = "waiting", "Waiting for an upstream fact"


#: Deliveries still to run: the relay re-dispatches them once ``dispatch_after`` has passed.
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING, DeliveryStatus.WAITING)
_OPEN = ["pending", "retrying", "waiting"]


class EventDelivery(models.Model):
    #: Indexed through one_delivery_per_handler (event first): a second index would only cost writes.
    event = models.ForeignKey(StoredEvent, on_delete=models.PROTECT, related_name="deliveries", db_index=False)
    handler = models.CharField(max_length=120)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    #: When the relay may (re)dispatch this delivery if it is still open.
    dispatch_after = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    test_clock_id = models.UUIDField(null=True, blank=True)
    #: What a WAITING delivery waits for, in the words of ``sharedkernel.bus.wait_for``.
    waiting_for = models.CharField(max_length=200, blank=True, db_default="")

    class Meta:
        verbose_name_plural = "event deliveries"
        constraints = [models.UniqueConstraint(fields=["event", "handler"], name="one_delivery_per_handler")]
        indexes = [
            models.Index(
                fields=["dispatch_after"],
                name="open_delivery_due",
                condition=Q(status__in=_OPEN),
            ),
            models.Index(
                fields=["test_clock_id"],
                name="open_delivery_clock",
                condition=Q(status__in=_OPEN),
            ),
            # ``arrived(needs)`` finds the deliveries waiting for that fact.
            models.Index(fields=["waiting_for"], name="delivery_waiting_for", condition=Q(status="waiting")),
            # Done rows (nearly all of them) stay out: marking a delivery done then writes no entry here.
            models.Index(
                fields=["status", "handler"],
                name="delivery_unfinished_handler",
                condition=~Q(status="done"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.handler} ← event #{self.event_id} ({self.status})"


class TestClock(models.Model):
    __test__ = False  # not a pytest test class

    class Status(models.TextChoices):
        READY = "ready"
        ADVANCING = "advancing"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, blank=True)
    frozen_time = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.READY)
    created_at = models.DateTimeField(default=timezone.now)
    #: The time the advance under way (or the last one) moves the clock to.
    advance_to = models.DateTimeField(null=True, blank=True)
    #: Which run of the advance owns the clock: a resumed advance takes a new one, and a late or
    #: duplicate task of the old run finds it changed and stops (sharedkernel.scheduling).
    advance_run = models.UUIDField(null=True, blank=True, editable=False)
    #: Real time until which the run is known alive; it renews this at every step and while it waits.
    #: Past it, beat's resume_test_clocks takes the advance over (a killed worker or web process).
    advance_lease_until = models.DateTimeField(null=True, blank=True)
    #: Why the last advance stopped short of its target (a job raised, consequences did not settle).
    advance_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name or 'Test clock'} @ {self.frozen_time:%Y-%m-%d %H:%M}"

    def begin_advance(self, *, to, run: uuid.UUID, lease_until) -> None:
        """Mark the clock advancing to ``to`` for ``run`` (the caller checked the target)."""
        self.status, self.advance_to, self.advance_run = self.Status.ADVANCING, to, run
        self.advance_lease_until, self.advance_error = lease_until, ""


class IdempotencyRecord(models.Model):
    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETE = "complete"

    scope = models.CharField(max_length=64, help_text="Hash of the caller's credentials.")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    state = models.CharField(max_length=12, choices=State.choices, default=State.IN_PROGRESS)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.BinaryField(null=True)
    content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="one_record_per_key")]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}] {self.state}"


class Heartbeat(models.Model):
    name = models.CharField(max_length=50, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.beat_at:%Y-%m-%d %H:%M:%S}"


class CustomerLogin(models.Model):
    """Which customer a login acts for. Written by Subscriptions on registration;
    read by every context's edges to scope requests (no context reads another's tables)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer_login")
    customer_id = models.UUIDField(unique=True)

    def __str__(self) -> str:
        return f"{self.user} → customer {self.customer_id}"
