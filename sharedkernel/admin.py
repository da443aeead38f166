from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from sharedkernel import bus
from sharedkernel.errors import DomainError
from sharedkernel.models import DeliveryStatus, EventDelivery, Heartbeat, StoredEvent, TestClock
from sharedkernel.scheduling import request_advance, wait_for_advance


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StoredEvent)
class StoredEventAdmin(ReadOnlyAdmin):
    """The event store: append-only, so staff can read it and nothing else."""

    list_display = ["position", "event_type", "aggregate_type", "aggregate_id", "occurred_on", "correlation_id"]
    list_filter = ["event_type", "aggregate_type"]
    search_fields = ["=aggregate_id", "=correlation_id", "=event_id"]
    date_hierarchy = "occurred_on"
    readonly_fields = [
        "position",
        "event_id",
        "event_type",
        "event_version",
        "occurred_on",
        "recorded_at",
        "aggregate_type",
        "aggregate_id",
        "aggregate_version",
        "correlation_id",
        "causation_id",
        "test_clock_id",
        "pretty_payload",
        "delivery_states",
    ]
    exclude = ["payload"]
    show_full_result_count = False

    @admin.display(description="payload")
    def pretty_payload(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    @admin.display(description="deliveries")
    def delivery_states(self, obj):
        rows = obj.deliveries.order_by("handler").values_list("pk", "handler", "status")
        return format_html_join(
            mark_safe("<br>"),
            '<a href="{}">{}</a>: {}',
            ((reverse("admin:sharedkernel_eventdelivery_change", args=[pk]), h, s) for pk, h, s in rows),
        )


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyAdmin):
    """Who has handled which event. Failed rows carry the error; "retry" runs them again. Waiting rows
    say which upstream fact they wait for; they run when it arrives."""

    list_display = [
        "id",
        "handler",
        "event_link",
        "status",
        "waiting_for",
        "attempts",
        "dispatch_after",
        "completed_at",
    ]
    list_filter = ["status", "handler"]
    search_fields = ["=event__event_id", "handler"]
    readonly_fields = [
        "event",
        "handler",
        "status",
        "waiting_for",
        "attempts",
        "dispatch_after",
        "created_at",
        "completed_at",
        "test_clock_id",
        "error",
    ]
    exclude = ["last_error"]
    actions = ["retry"]
    list_select_related = ["event"]
    show_full_result_count = False

    def changelist_view(self, request, extra_context=None):
        last = Heartbeat.objects.filter(name=bus.PRUNE_HEARTBEAT).values_list("beat_at", flat=True).first()
        when = f"{last:%Y-%m-%d %H:%M} UTC" if last else "never"
        title = f"Event deliveries (done rows kept {settings.OUTBOX_DONE_RETENTION_DAYS} days; last prune: {when})"
        return super().changelist_view(request, extra_context={"title": title, **(extra_context or {})})

    @admin.display(description="event")
    def event_link(self, obj):
        url = reverse("admin:sharedkernel_storedevent_change", args=[obj.event_id])
        return format_html('<a href="{}">#{} {}</a>', url, obj.event_id, obj.event.event_type)

    @admin.display(description="last error")
    def error(self, obj):
        return format_html("<pre>{}</pre>", obj.last_error or "—")

    @admin.action(description="Retry the selected failed deliveries")
    def retry(self, request, queryset):
        ids = list(queryset.filter(status=DeliveryStatus.FAILED).values_list("pk", flat=True))
        count = bus.retry_failed(ids)
        skipped = queryset.count() - count
        self.message_user(request, f"{count} failed delivery(ies) queued for retry.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} selected row(s) were not failed and were left alone.", messages.INFO)


@admin.register(TestClock)
class TestClockAdmin(admin.ModelAdmin):
    list_display = ["name", "frozen_time", "status", "advance_to", "created_at", "id"]
    readonly_fields = ["id", "status", "advance_to", "advance_lease_until", "error", "created_at"]
    exclude = ["advance_error"]
    actions = ["advance_one_day", "advance_one_month"]

    def get_readonly_fields(self, request, obj=None):
        # Time only moves forward, through "advance", which runs the due work.
        return [*self.readonly_fields, "frozen_time"] if obj else self.readonly_fields

    @admin.display(description="last advance error")
    def error(self, obj):
        return format_html("<pre>{}</pre>", obj.advance_error or "—")

    def _advance(self, request, queryset, delta: timedelta):
        """The API's path: begin the advance, hand it to a worker, and wait a little for it."""
        for clock in queryset:
            try:
                request_advance(str(clock.pk), clock.frozen_time + delta)
            except DomainError as exc:
                self.message_user(request, f"{clock}: {exc}", messages.ERROR)
                continue
            now = wait_for_advance(str(clock.pk), settings.TEST_CLOCK_ADMIN_WAIT_SECONDS)
            label = clock.name or clock.pk
            if now.status == TestClock.Status.ADVANCING:
                self.message_user(
                    request,
                    f"{label} is still advancing (at {now.frozen_time:%Y-%m-%d %H:%M} of "
                    f"{now.advance_to:%Y-%m-%d %H:%M}); reload to follow it.",
                    messages.WARNING,
                )
            elif now.advance_error:
                self.message_user(
                    request, f"{label} stopped at {now.frozen_time:%Y-%m-%d %H:%M}: {now.advance_error}", messages.ERROR
                )
            else:
                self.message_user(request, f"{label} advanced by {delta.days} day(s).")

    @admin.action(description="Advance by one day (runs the due work)")
    def advance_one_day(self, request, queryset):
        self._advance(request, queryset, timedelta(days=1))

    @admin.action(description="Advance by 30 days (runs the due work)")
    def advance_one_month(self, request, queryset):
        self._advance(request, queryset, timedelta(days=30))
