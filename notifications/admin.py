"""Staff admin of Notifications: the log, webhook endpoints and deliveries (with redeliver), template previews."""

from __future__ import annotations

import uuid

from django.contrib import admin
from django.db.models import OuterRef, Subquery
from django.http import HttpResponse
from django.urls import path
from django.utils.html import format_html

from notifications import commands, composition
from notifications.models import Notification, Recipient, Suppression, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from sharedkernel.adminkit import ReadOnlyAdmin, clipped_column, moment_column, run_for_each

SAMPLE = {
    "name": "Ada Lovelace",
    "site_url": "http://localhost:8000",
    "dashboard_url": "http://localhost:8000/app/",
    "number": "INV-2026-000042",
    "amount_due": "53.61 USD",
    "total": "53.61 USD",
    "url": "#",
    "plan_name": "Pro",
    "lines": [
        {"description": "Pro (Nov 1 – Dec 1)", "amount": "49.99 USD"},
        {"description": "Tax", "amount": "3.62 USD"},
    ],
    "invoice_number": "INV-2026-000042",
    "amount": "53.61 USD",
    "paid_at": "2026-11-01",
    "reason": "Your card was declined.",
    "next_retry_at": "2026-11-02 10:00",
    "update_url": "#",
    "level": 2,
    "final": False,
    "urgency": "Second notice",
    "at_period_end": True,
    "cancelled_at": "2026-11-30",
    "converted": False,
    "payment_method_url": "#",
    "days_left": 3,
    "trial_end": "December 1, 2026",
    "manage_url": "#",
}


class CustomerFilter(admin.SimpleListFilter):
    """By customer: the one selected and the most recently written to (the log can name thousands)."""

    title = "customer"
    parameter_name = "customer"

    def lookups(self, request, model_admin):
        recent = Notification.objects.exclude(customer_id=None).order_by("-created_at")
        ids = list(dict.fromkeys(recent.values_list("customer_id", flat=True)[:300]))[:15]
        if self.value():
            try:
                ids = [uuid.UUID(self.value()), *ids]
            except ValueError:
                pass
        names = dict(Recipient.objects.filter(pk__in=ids).values_list("pk", "name"))
        return [(str(pk), names.get(pk, str(pk))) for pk in dict.fromkeys(ids)]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            return queryset.filter(customer_id=uuid.UUID(self.value()))
        except ValueError:
            return queryset.none()


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "template", "status", "customer", "email", "subject"]
    list_filter = ["status", "template", CustomerFilter, "essential"]
    search_fields = ["email", "=customer_id", "=cause_event_id", "subject"]
    change_list_template = "admin/notifications/notification_changelist.html"

    def get_urls(self):
        return [
            path("preview/<str:template>/", self.admin_site.admin_view(self.preview), name="notification_preview"),
            *super().get_urls(),
        ]

    def preview(self, request, template):
        subject, text, html = composition.render(template, SAMPLE)
        return HttpResponse(html)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "templates": sorted(composition.TEMPLATES)})

    def get_queryset(self, request):
        names = Recipient.objects.filter(pk=OuterRef("customer_id")).values("name")[:1]
        return super().get_queryset(request).annotate(customer_name=Subquery(names))

    @admin.display(description="Customer", ordering="customer_name")
    def customer(self, note):
        if not note.customer_id:
            return "—"
        return format_html('<a href="?customer={}">{}</a>', note.customer_id, note.customer_name or note.customer_id)


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "at", "status_code", "latency_ms", "error"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        moment_column("created_at", "Created"),
        "event_type",
        clipped_column("endpoint", "Endpoint", ordering="endpoint__url"),
        "status",
        "attempts",
        "last_status_code",
        moment_column("next_attempt_at", "Next attempt"),
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["=event_id", "endpoint__url"]
    inlines = [AttemptInline]
    actions = ["redeliver"]

    @admin.action(description="Redeliver now")
    def redeliver(self, request, queryset):
        run_for_each(self, request, queryset, "Redeliver", lambda d: commands.redeliver(delivery_id=d.pk))


@admin.register(WebhookEndpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = [
        clipped_column("url", "URL"),
        clipped_column("customer_id", "Customer id"),
        "events",
        "active",
        moment_column("failing_since", "Failing since"),
        moment_column("disabled_at", "Disabled"),
    ]
    list_filter = ["active"]
    search_fields = ["url", "=customer_id"]
    fields = ["customer_id", "url", "events", "active", "failing_since", "disabled_at", "disabled_reason", "created_at"]
    readonly_fields = ["customer_id", "url", "active", "failing_since", "disabled_at", "disabled_reason", "created_at"]
    actions = ["enable", "disable"]

    def has_add_permission(self, request):
        return False  # registered through the API or the customer page (URL checks, secret shown once)

    @admin.action(description="Enable again (fresh failure clock)")
    def enable(self, request, queryset):
        run_for_each(self, request, queryset, "Enable", lambda e: commands.enable_endpoint(endpoint_id=e.pk))

    @admin.action(description="Disable")
    def disable(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            "Disable",
            lambda e: commands.disable_endpoint(endpoint_id=e.pk, reason=f"Disabled by staff ({request.user})."),
        )


@admin.register(Recipient)
class RecipientAdmin(ReadOnlyAdmin):
    list_display = ["name", "email", "plan_name", "essential_only"]
    search_fields = ["name", "email"]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["email", "reason", "created_at"]
    search_fields = ["email"]
