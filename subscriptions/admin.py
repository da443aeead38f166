"""Staff edges of the Subscriptions context.

Nothing here writes a model directly: forms collect input and call a command,
actions call a command per selected row. Status and prices of a subscription
are never editable fields.
"""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from sharedkernel.adminkit import CommandDrivenAdmin, ReadOnlyAdmin, form_action, run_for_each, timeline_link
from sharedkernel.errors import DomainError
from sharedkernel.values import AmountRefused, Money, UnitRate
from subscriptions import commands, queries
from subscriptions.models import (
    Customer,
    LeftOut,
    Plan,
    PriceMigration,
    PriceMigrationItem,
    ResumeInitiator,
    Subscription,
    SubscriptionStatus,
    UsageCounter,
    UsagePeriod,
    UsageRecord,
)

# -- plans -------------------------------------------------------------------------


def _parse_money_lines(text: str, field: str, read=Money.parse) -> list:
    """'49.00 USD' per line (``read=UnitRate.parse`` for rates of up to 6 decimals)."""
    prices = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        try:
            amount, currency = line.split()
            prices.append(read(amount, currency))
        except AmountRefused as exc:  # the API's strict reading (docs/api-input.md)
            raise forms.ValidationError({field: f"“{line}”: {exc.message}"}) from None
        except ValueError:
            raise forms.ValidationError({field: f"“{line}” is not “<amount> <CURRENCY>”, e.g. 49.00 USD."}) from None
    return prices


class PlanForm(forms.ModelForm):
    prices_text = forms.CharField(
        label="Prices", widget=forms.Textarea(attrs={"rows": 3}), help_text="One per line: 49.00 USD"
    )
    features_text = forms.CharField(
        label="Features", required=False, widget=forms.Textarea(attrs={"rows": 4}), help_text="One per line."
    )
    usage_text = forms.CharField(
        label="Included usage",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line: api_calls 10000",
    )
    overage_text = forms.CharField(
        label="Overage rates",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line and currency, up to 6 decimals: api_calls 0.000125 USD",
    )

    class Meta:
        model = Plan
        fields = ["code", "name", "tier", "interval", "trial_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        plan = self.instance
        if plan.pk:
            self.fields["prices_text"].initial = "\n".join(f"{p.amount} {p.currency}" for p in plan.prices)
            self.fields["features_text"].initial = "\n".join(plan.features)
            self.fields["usage_text"].initial = "\n".join(f"{m} {q}" for m, q in plan.included_usage.items())
            self.fields["overage_text"].initial = "\n".join(
                f"{m} {r.amount} {r.currency}" for m, rates in plan.overage_rates.items() for r in rates
            )

    def clean(self):
        data = super().clean()
        data["prices"] = _parse_money_lines(data.get("prices_text", ""), "prices_text")
        data["features"] = [f.strip() for f in data.get("features_text", "").splitlines() if f.strip()]
        usage = {}
        for line in filter(None, (x.strip() for x in data.get("usage_text", "").splitlines())):
            try:
                metric, quantity = line.split()
                usage[metric] = int(quantity)
            except ValueError:
                raise forms.ValidationError({"usage_text": f"“{line}” is not “metric quantity”."}) from None
        data["included_usage"] = usage
        rates: dict[str, list[UnitRate]] = {}
        for line in filter(None, (x.strip() for x in data.get("overage_text", "").splitlines())):
            try:
                metric, rest = line.split(maxsplit=1)
            except ValueError:
                raise forms.ValidationError({"overage_text": f"“{line}” is not “metric amount CURRENCY”."}) from None
            rates.setdefault(metric, []).extend(_parse_money_lines(rest, "overage_text", read=UnitRate.parse))
        data["overage_rates"] = rates
        if not self.errors:
            self._validate_with_aggregate(data)
        return data

    def _validate_with_aggregate(self, data) -> None:
        # The aggregate owns the rules: run them on a throwaway plan so the
        # form shows its refusals next to the fields before anything is saved.
        probe = Plan(code=data.get("code") or self.instance.code)
        try:
            probe._apply(
                name=data.get("name", ""),
                tier=data.get("tier") or self.instance.tier,
                interval=data.get("interval") or self.instance.interval,
                trial_days=data.get("trial_days", 0),
                prices=data["prices"],
                features=data["features"],
                included_usage=data["included_usage"],
                overage_rates=data["overage_rates"],
            )
        except DomainError as exc:
            field_map = {
                "prices": "prices_text",
                "features": "features_text",
                "included_usage": "usage_text",
                "overage_rates": "overage_text",
            }
            for field, problem in exc.details.items():
                self.add_error(field_map.get(field, field if field in self.fields else None), problem)


@admin.register(Plan)
class PlanAdmin(CommandDrivenAdmin):
    form = PlanForm
    list_display = ["name", "code", "tier", "interval", "price_list", "trial_days", "archived", "subscriber_count"]
    list_filter = ["tier", "interval", "archived"]
    search_fields = ["name", "code"]
    actions = ["archive", "restore"]
    readonly_fields = ["archived", "current_version", "versions_table", "created_at", "version"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("price_rows", "overage_rows")

    def get_readonly_fields(self, request, obj=None):
        # Tier and interval define what existing subscribers bought: fixed after creation.
        return [*self.readonly_fields, "code", "tier", "interval"] if obj else self.readonly_fields

    @admin.display(description="prices")
    def price_list(self, plan):
        return ", ".join(str(p) for p in plan.prices)

    @admin.display(description="versions")
    def versions_table(self, plan):
        """Every version of the terms, newest first, with how many live subscriptions are billed on it
        (read-only: a save of this form makes the next version)."""
        if not plan.pk:
            return "—"
        live = dict(
            plan.subscriptions.exclude(status=SubscriptionStatus.CANCELLED)
            .values_list("plan_version")
            .annotate(n=Count("id"))
        )
        rows = format_html_join(
            "",
            "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    v.version,
                    ", ".join(str(p) for p in v.money_prices),
                    ", ".join(f"{m}: {q:,}" for m, q in v.included_usage.items()) or "—",
                    "; ".join(f"{m}: {', '.join(str(r) for r in rs)}" for m, rs in v.unit_overage_rates.items()) or "—",
                    v.trial_days,
                    f"{v.current_from:%Y-%m-%d %H:%M} UTC",
                    live.get(v.version, 0),
                )
                for v in plan.versions.order_by("-version")
            ),
        )
        return format_html(
            '<table class="plan-versions"><thead><tr><th>Version</th><th>Prices</th><th>Included</th>'
            "<th>Overage</th><th>Trial days</th><th>Current from</th><th>Live subscriptions</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="live subscriptions")
    def subscriber_count(self, plan):
        return plan.subscriptions.exclude(status=SubscriptionStatus.CANCELLED).count()

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        terms = dict(
            name=data["name"],
            trial_days=data["trial_days"],
            prices=data["prices"],
            features=data["features"],
            included_usage=data["included_usage"],
            overage_rates=data["overage_rates"],
        )
        if change:
            plan = commands.revise_plan(plan_id=obj.pk, **terms)
        else:
            plan = commands.define_plan(code=data["code"], tier=data["tier"], interval=data["interval"], **terms)
        obj.pk = plan.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass  # prices and rates were written by the command

    @admin.action(description="Archive (no new subscriptions; existing ones stay)")
    def archive(self, request, queryset):
        run_for_each(self, request, queryset, "Archive", lambda p: commands.archive_plan(plan_id=p.pk))

    @admin.action(description="Offer again")
    def restore(self, request, queryset):
        run_for_each(self, request, queryset, "Restore", lambda p: commands.restore_plan(plan_id=p.pk))


# -- customers ---------------------------------------------------------------------


class CustomerAddForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = ["name", "email", "currency", "country", "region", "tax_exempt", "test_clock"]


class SubscriptionInline(admin.TabularInline):
    model = Subscription
    fk_name = "customer"
    fields = ["plan", "status", "price_display", "current_period_end", "trial_end", "cancel_at_period_end"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="price")
    def price_display(self, sub):
        return str(sub.price)


@admin.register(Customer)
class CustomerAdmin(CommandDrivenAdmin):
    list_display = ["name", "email", "currency", "country", "has_payment_method", "test_clock", "created_at"]
    list_filter = ["currency", "country", "has_payment_method", "tax_exempt"]
    search_fields = ["name", "email", "=id"]
    readonly_fields = [
        "id",
        "timeline",
        "name",
        "email",
        "currency",
        "country",
        "region",
        "tax_exempt",
        "user",
        "test_clock",
        "has_payment_method",
        "created_at",
        "version",
    ]

    @admin.display(description="Timeline")
    def timeline(self, obj):
        return timeline_link(customer_id=obj.pk)

    inlines = [SubscriptionInline]

    def get_inlines(self, request, obj=None):
        return self.inlines if obj else []

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = CustomerAddForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else ["has_payment_method"]

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj else CustomerAddForm._meta.fields

    def save_model(self, request, obj, form, change):
        if change:
            return
        data = form.cleaned_data
        customer, _ = commands.register_customer(
            name=data["name"],
            email=data["email"],
            currency=data["currency"],
            country=data["country"],
            region=data.get("region", ""),
            tax_exempt=data.get("tax_exempt", False),
            test_clock_id=data["test_clock"].pk if data.get("test_clock") else None,
        )
        obj.pk = customer.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass


# -- subscriptions -----------------------------------------------------------------


class SubscriptionAddForm(forms.Form):
    customer = forms.ModelChoiceField(Customer.objects.all())
    plan = forms.ModelChoiceField(Plan.objects.filter(archived=False))
    currency = forms.CharField(max_length=3, required=False, help_text="Defaults to the customer's currency.")
    trial = forms.BooleanField(required=False, help_text="Start with the plan's free trial.")


class ChangePlanForm(forms.Form):
    plan = forms.ModelChoiceField(Plan.objects.filter(archived=False), label="New plan")


@admin.register(Subscription)
class SubscriptionAdmin(CommandDrivenAdmin):
    list_display = [
        "customer_name",
        "plan",
        "status_badge",
        "price_display",
        "period_ends",
        "trial_ends",
        "pending_plan",
    ]  # fits a 1280 px window; "cancel at period end" is a filter, the start date the date hierarchy
    list_filter = ["status", "plan", "interval", "cancel_at_period_end", "suspension_reason"]
    search_fields = ["customer__name", "customer__email", "=id"]
    list_select_related = ["customer", "plan", "pending_plan"]
    date_hierarchy = "created_at"
    actions = [
        "cancel_now",
        "cancel_at_period_end",
        "suspend",
        "resume",
        "change_plan",
        "approve_plan_change",
        "decline_plan_change",
    ]
    readonly_fields = [
        "id",
        "timeline",
        "customer",
        "plan",
        "status",
        "currency",
        "price_display",
        "plan_version",
        "scheduled_version",
        "scheduled_price_minor",
        "scheduled_effective_at",
        "scheduled_migration_id",
        "dunning_since",
        "interval",
        "billing_anchor",
        "period_index",
        "current_period_start",
        "current_period_end",
        "trial_start",
        "trial_end",
        "trial_reminder_sent",
        "cancel_at_period_end",
        "cancellation_reason",
        "cancelled_at",
        "activated_at",
        "suspended_at",
        "suspension_reason",
        "pending_plan",
        "test_clock_id",
        "created_at",
        "version",
    ]

    @admin.display(description="Timeline")
    def timeline(self, obj):
        return timeline_link(subscription_id=obj.pk)

    def get_fields(self, request, obj=None):
        return self.readonly_fields

    def add_view(self, request, form_url="", extra_context=None):
        form = SubscriptionAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                sub = commands.subscribe(
                    customer_id=data["customer"].pk,
                    plan_id=data["plan"].pk,
                    currency=data["currency"] or None,
                    trial=data["trial"],
                )
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Subscription created ({sub.get_status_display()}).", messages.SUCCESS)
                return redirect("admin:subscriptions_subscription_change", sub.pk)
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Add subscription",
            "opts": self.model._meta,
        }
        return render(request, "admin/subscriptions/subscription_add.html", context)

    @admin.display(description="customer", ordering="customer__name")
    def customer_name(self, sub):
        return format_html("{}<br><small>{}</small>", sub.customer.name, sub.customer.email)

    @admin.display(description="period ends", ordering="current_period_end")
    def period_ends(self, sub):
        return date_format(localtime(sub.current_period_end), "M j, Y") if sub.current_period_end else "—"

    @admin.display(description="trial ends", ordering="trial_end")
    def trial_ends(self, sub):
        return date_format(localtime(sub.trial_end), "M j, Y") if sub.trial_end else "—"

    @admin.display(description="status", ordering="status")
    def status_badge(self, sub):
        return format_html('<span class="status status-{}">{}</span>', sub.status, sub.get_status_display())

    @admin.display(description="price")
    def price_display(self, sub):
        return f"{sub.price} / {sub.interval}"

    @admin.action(description="Cancel now")
    def cancel_now(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            "Cancel",
            lambda s: commands.cancel_subscription(subscription_id=s.pk, reason="cancelled by staff"),
        )

    @admin.action(description="Cancel at period end")
    def cancel_at_period_end(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            "Schedule cancellation",
            lambda s: commands.cancel_subscription(
                subscription_id=s.pk, reason="cancelled by staff", at_period_end=True
            ),
        )

    @admin.action(description="Suspend (pause collection and service)")
    def suspend(self, request, queryset):
        run_for_each(self, request, queryset, "Suspend", lambda s: commands.suspend_subscription(subscription_id=s.pk))

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            "Resume",
            lambda s: commands.resume_subscription(subscription_id=s.pk, initiator=ResumeInitiator.STAFF),
        )

    @admin.action(description="Approve requested plan change")
    def approve_plan_change(self, request, queryset):
        run_for_each(self, request, queryset, "Approve", lambda s: commands.approve_plan_change(subscription_id=s.pk))

    @admin.action(description="Decline requested plan change")
    def decline_plan_change(self, request, queryset):
        run_for_each(self, request, queryset, "Decline", lambda s: commands.decline_plan_change(subscription_id=s.pk))

    @admin.action(description="Change plan…")
    def change_plan(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            form_class=ChangePlanForm,
            action="change_plan",
            title="Change plan",
            intro="Move these subscriptions to another plan. Staff changes need no approval; "
            "Billing prorates the difference.",
            submit="Change plan",
            run=lambda s, data: commands.change_plan(subscription_id=s.pk, plan_id=data["plan"].pk, by_staff=True),
        )

    def has_delete_permission(self, request, obj=None):
        return False


# -- usage (read-only: facts reported by customers' systems) --------------------------------


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


# -- price migrations ----------------------------------------------------------------


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
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Draft a price migration",
            "opts": self.model._meta,
        }
        return render(request, "admin/subscriptions/pricemigration_add.html", context)

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

    def _run(self, request, queryset, label, command):
        run_for_each(self, request, queryset, label, lambda m: command(migration_id=m.pk))

    @admin.action(description="Start (schedule the price changes, in batches)")
    def start(self, request, queryset):
        self._run(request, queryset, "Start", commands.start_price_migration)

    @admin.action(description="Pause (schedule no more for now)")
    def pause(self, request, queryset):
        self._run(request, queryset, "Pause", commands.pause_price_migration)

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        self._run(request, queryset, "Resume", commands.resume_price_migration)

    @admin.action(description="Cancel (withdraw the changes that have not happened)")
    def cancel(self, request, queryset):
        self._run(request, queryset, "Cancel", commands.cancel_price_migration)
