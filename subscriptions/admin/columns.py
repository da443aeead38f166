"""Read-only columns more than one of Subscriptions' admins shows."""

from __future__ import annotations

from django.contrib import admin

from sharedkernel.adminkit import timeline_link


def timeline_column(key: str):
    """The "Timeline" field: a link to the staff timeline of the row, found by ``key``
    (``subscription_id`` or ``customer_id``, as timeline_link takes them)."""

    @admin.display(description="Timeline")
    def timeline(modeladmin, obj):
        return timeline_link(**{key: obj.pk})

    return timeline
