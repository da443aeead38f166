"""Usage in the admin, read-only: facts reported by customers' systems.

Nothing here writes a model directly: forms collect input and call a command, actions call a
command per selected row."""

from __future__ import annotations

from django.contrib import admin

from sharedkernel.adminkit import ReadOnlyAdmin
from subscriptions.models import (
    UsageCounter,
    UsagePeriod,
    UsageRecord,
)


@admin.register(UsageCounter)
class UsageCounterAdmin(ReadOnlyAdmin):
    """Usage per subscription, metric and period (what is billed at period close)."""

    list_display = ["subscription_id", "metric", "period_start", "used"]
    list_filter = ["metric", "period_start"]
    search_fields = ["=subscription_id"]


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ["subscription_id", "metric", "quantity", "timestamp", "idempotency_key", "recorded_at"]
    list_filter = ["metric"]
    search_fields = ["=subscription_id", "idempotency_key"]
    show_full_result_count = False


@admin.register(UsagePeriod)
class UsagePeriodAdmin(ReadOnlyAdmin):
    list_display = ["subscription", "period_start", "period_end", "final", "due_at", "calculated_at"]
    list_filter = ["final"]
