"""Staff edges of price migrations: draft, preview, start, pause, resume, cancel.

Nothing here writes a model directly: forms collect input and call a command, actions call a
command per selected row."""

from __future__ import annotations

import uuid
from functools import partial

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from sharedkernel.adminkit import ReadOnlyAdmin, render_add_page
from sharedkernel.errors import DomainError
from subscriptions import commands, queries
from subscriptions.admin.actions import command_action
from subscriptions.models import LeftOut, Plan, PriceMigration, PriceMigrationItem, Subscription


def _split(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


class PriceMigrationAddForm(forms.Form):
    """What POST /price-migrations/ takes; the command's own refusals are shown on the field they name."""

    plan = forms.ModelChoiceField(Plan.objects.all())
    to_version = forms.IntegerField(min_value=1, label="Target version", help_text="The version to move them to.")
    effective_from = forms.DateTimeField(
        help_text="YYYY-MM-DD HH:MM (UTC). Each subscription moves at its first renewal on or after this date, "
        "and for a rise not before its notice period has run.",
    )
    from_versions = forms.CharField(
        required=False, label="From versions", help_text="e.g. “1, 2”. Empty: every other version."
    )
    currencies = forms.CharField(required=False, help_text="e.g. “USD EUR”. Empty: every currency.")
    created_before = forms.DateTimeField(
        required=False, help_text="Only subscriptions created before this time (UTC). Empty: any."
    )
    subscriptions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Subscription ids, one a line. Empty: every matching subscription.",
    )

    def clean_from_versions(self):
        try:
            return [int(v) for v in _split(self.cleaned_data["from_versions"])]
        except ValueError:
            raise forms.ValidationError("Whole version numbers, separated by commas.") from None

    def clean_currencies(self):
        codes = [c.upper() for c in _split(self.cleaned_data["currencies"])]
        if bad := [c for c in codes if len(c) != 3 or not c.isalpha()]:
            raise forms.ValidationError(f"Not ISO 4217 codes: {', '.join(bad)}.")
        return codes

    def clean_subscriptions(self):
        ids = _split(self.cleaned_data["subscriptions"])
        try:
            return [str(uuid.UUID(i)) for i in ids]
        except ValueError:
            raise forms.ValidationError("Subscription ids are UUIDs, one a line.") from None


each_migration = partial(command_action, key="migration_id")

#: Buttons on a migration's page: (command, label, the statuses it is offered in).
_MIGRATION_BUTTONS = {
    "start": (commands.start_price_migration, "Start", ("draft",)),
    "pause": (commands.pause_price_migration, "Pause", ("running",)),
    "resume": (commands.resume_price_migration, "Resume", ("paused",)),
    "cancel": (commands.cancel_price_migration, "Cancel", ("draft", "running", "paused", "done")),
}


@admin.register(PriceMigration)
class PriceMigrationAdmin(ReadOnlyAdmin):
    """Staff draft a migration here (or through POST /price-migrations/), preview it, read its impact,
    start, pause, resume or cancel it (buttons on its page, or actions on the list) and follow the
    progress. Every form and button calls the migration's command; nothing here writes a field."""

    list_display = ["__str__", "plan", "to_version", "effective_from", "status", "progress", "created_at"]
    list_filter = ["status"]
    actions = ["start", "pause", "resume", "cancel"]
    change_form_template = "admin/subscriptions/pricemigration_change.html"
    readonly_fields = [
        "plan",
        "to_version",
        "effective_from",
        "selection",
        "status",
        "progress",
        "preview",
        "impact_link",
        "left_out_table",
        "created_at",
        "started_at",
        "finished_at",
        "version",
    ]

    def get_fields(self, request, obj=None):
        return self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request, obj=None):
        return admin.ModelAdmin.has_add_permission(self, request)

    def add_view(self, request, form_url="", extra_context=None):
        form = PriceMigrationAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                migration = commands.draft_price_migration(
                    plan_id=str(data["plan"].pk),
                    to_version=data["to_version"],
                    effective_from=data["effective_from"],
                    from_versions=data["from_versions"],
                    currencies=data["currencies"],
                    subscription_ids=data["subscriptions"],
                    created_before=data["created_before"],
                )
            except DomainError as exc:
                # the command's details name the API's fields, which are the form's
                fields = [name for name in exc.details if name in form.fields]
                form.add_error(fields[0] if fields else None, exc.message)
            else:
                self.message_user(request, "Migration drafted: check its preview and impact, then start it.")
                return redirect("admin:subscriptions_pricemigration_change", migration.pk)
        return render_add_page(
            self, request, form, title="Draft a price migration", template="admin/subscriptions/pricemigration_add.html"
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The page's buttons post here (``migration_action``): the command, then back to the page."""
        if request.method == "POST" and "migration_action" in request.POST:
            button = _MIGRATION_BUTTONS.get(request.POST["migration_action"])
            migration = self.get_object(request, object_id)
            if button is None or migration is None:
                self.message_user(request, "No such migration or action.", messages.ERROR)
            else:
                try:
                    button[0](migration_id=migration.pk)
                except DomainError as exc:
                    self.message_user(request, f"{button[1]} refused — {exc.message}", messages.WARNING)
                else:
                    self.message_user(request, f"{button[1]}: done.", messages.SUCCESS)
            return redirect("admin:subscriptions_pricemigration_change", object_id)
        migration = self.get_object(request, object_id)
        buttons = [
            (name, label) for name, (_, label, offered) in _MIGRATION_BUTTONS.items()
            if migration is not None and migration.status in offered
        ]  # fmt: skip
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "buttons": buttons})

    @admin.display(description="selection")
    def selection(self, m):
        parts = [
            f"versions {', '.join(map(str, m.from_versions))}" if m.from_versions else "every older version",
            ", ".join(m.currencies) if m.currencies else "every currency",
            f"{len(m.subscription_ids)} listed subscriptions" if m.subscription_ids else "every matching subscription",
        ]
        if m.created_before:
            parts.append(f"created before {m.created_before:%Y-%m-%d}")
        return "; ".join(parts)

    @admin.display(description="progress")
    def progress(self, m):
        counts = queries.outcome_counts(m)
        return format_html(
            '<span class="migration-progress">scheduled {} · moved {} · left out {} · cancelled {}</span>',
            counts["scheduled"],
            counts["moved"],
            counts["left_out"],
            counts["cancelled"],
        )

    def _preview(self, m) -> dict | None:
        """Computed once per page (the preview and the left-out table both show it)."""
        if m.status not in ("draft", "paused", "running"):
            return None
        if getattr(m, "_preview", None) is None:
            m._preview = queries.price_migration_preview(m)
        return m._preview

    @admin.display(description="preview (who, how much, when — if started now)")
    def preview(self, m):
        p = self._preview(m)
        if p is None:
            return "—"
        return format_html(
            '<div class="migration-preview">{} subscriptions would move; MRR change {}; effective {} – {}; '
            "{} left out</div>",
            p["subscriptions"],
            ", ".join(str(x) for x in p["mrr_change"]) or "—",
            f"{p['first_effective_at']:%Y-%m-%d}" if p["first_effective_at"] else "—",
            f"{p['last_effective_at']:%Y-%m-%d}" if p["last_effective_at"] else "—",
            len(p["left_out"]),
        )

    @admin.display(description="impact")
    def impact_link(self, m):
        # Analytics serves the page (replayed from the event store); linked by URL name, never imported.
        return format_html(
            '<a class="impact-link" href="{}">What it would have done to the last 6 months, and the next 12</a>',
            reverse("analytics:price-impact", args=[m.pk]),
        )

    @admin.display(description="left out (reported, not moved)")
    def left_out_table(self, m):
        items = list(m.items.filter(outcome="left_out").order_by("reason")[:50])
        caption = ""
        if not items and (p := self._preview(m)):  # not run yet: who the preview would leave out
            items = [
                PriceMigrationItem(subscription_id=r["subscription"], reason=r["reason"]) for r in p["left_out"][:50]
            ]
            caption = format_html("<caption>{}</caption>", "Would be left out if started now")
        if not items:
            return "—"
        labels = dict(LeftOut.choices)
        names = dict(
            Subscription.objects.filter(pk__in=[i.subscription_id for i in items]).values_list("pk", "customer__name")
        )
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td></tr>',
            (
                (
                    reverse("admin:subscriptions_subscription_change", args=[i.subscription_id]),
                    names.get(uuid.UUID(str(i.subscription_id)), i.subscription_id),
                    labels.get(i.reason, i.reason),
                )
                for i in items
            ),
        )
        return format_html(
            '<table class="left-out">{}<tr><th>Subscription of</th><th>Reason</th></tr>{}</table>', caption, rows
        )

    start = each_migration("Start (schedule the price changes, in batches)", "Start", commands.start_price_migration)
    pause = each_migration("Pause (schedule no more for now)", "Pause", commands.pause_price_migration)
    resume = each_migration("Resume", "Resume", commands.resume_price_migration)
    cancel = each_migration(
        "Cancel (withdraw the changes that have not happened)", "Cancel", commands.cancel_price_migration
    )
