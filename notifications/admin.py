"""Staff admin of Notifications: the log, webhook endpoints and deliveries (with redeliver), template previews."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpResponse
from django.urls import path

from notifications import commands, mail
from notifications.models import Notification, Recipient, Suppression, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from sharedkernel.adminkit import ReadOnlyAdmin, run_for_each

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


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "email", "template", "status", "subject", "cause_event_type"]
    list_filter = ["status", "template", "essential"]
    search_fields = ["email", "=customer_id", "=cause_event_id", "subject"]
    change_list_template = "admin/notifications/notification_changelist.html"

    def get_urls(self):
        return [
            path("preview/<str:template>/", self.admin_site.admin_view(self.preview), name="notification_preview"),
            *super().get_urls(),
        ]

    def preview(self, request, template):
        subject, text, html = mail.render(template, SAMPLE)
        return HttpResponse(html)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "templates": sorted(mail.TEMPLATES)})


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "at", "status_code", "latency_ms", "error"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "event_type", "endpoint", "status", "attempts", "last_status_code", "next_attempt_at"]
    list_filter = ["status", "event_type"]
    search_fields = ["=event_id", "endpoint__url"]
    inlines = [AttemptInline]
    actions = ["redeliver"]

    @admin.action(description="Redeliver now")
    def redeliver(self, request, queryset):
        run_for_each(self, request, queryset, "Redeliver", lambda d: commands.redeliver(delivery_id=d.pk))


@admin.register(WebhookEndpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "customer_id", "events", "active", "failing_since", "disabled_at"]
    list_filter = ["active"]
    search_fields = ["url", "=customer_id"]
    readonly_fields = ["secret", "failing_since", "disabled_at", "disabled_reason", "created_at"]

    def has_add_permission(self, request):
        return False  # registered through the API or the customer page (URL checks, secret shown once)


@admin.register(Recipient)
class RecipientAdmin(ReadOnlyAdmin):
    list_display = ["name", "email", "plan_name", "essential_only"]
    search_fields = ["name", "email"]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["email", "reason", "created_at"]
    search_fields = ["email"]
