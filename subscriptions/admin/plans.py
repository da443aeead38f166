"""Staff edges of plans: the catalogue, its versions, archive and offer again.

Nothing here writes a model directly: forms collect input and call a command, actions call a
command per selected row."""

from __future__ import annotations

from functools import partial

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html, format_html_join

from sharedkernel.adminkit import CommandDrivenAdmin
from sharedkernel.errors import DomainError
from sharedkernel.templatetags.formatting import format_money
from sharedkernel.values import AmountRefused, Money, UnitRate
from subscriptions import commands
from subscriptions.admin.actions import command_action
from subscriptions.models import (
    Plan,
    SubscriptionStatus,
)
from subscriptions.values import PlanTerms


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


each_plan = partial(command_action, key="plan_id")


def plan_terms(data) -> dict:
    """The terms (PlanTerms' keywords) out of PlanForm's cleaned data."""
    return {name: data[name] for name in PlanTerms.names()}


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
                tier=data.get("tier") or self.instance.tier,
                interval=data.get("interval") or self.instance.interval,
                terms=PlanTerms(**plan_terms(data)),
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
    list_display = [
        "name",
        "code",
        "tier",
        "interval",
        "price_list",
        "trial_days",
        "subscriber_count",
    ]  # archived: the filter
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
        return ", ".join(format_money(p).replace(" ", "\u00a0") for p in plan.prices)  # wraps between prices only

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

    @admin.display(description="subscribers")
    def subscriber_count(self, plan):
        return plan.subscriptions.exclude(status=SubscriptionStatus.CANCELLED).count()

    def save_model(self, request, obj, form, change):
        terms = plan_terms(form.cleaned_data)
        if change:
            plan = commands.revise_plan(plan_id=obj.pk, **terms)
        else:
            data = form.cleaned_data
            plan = commands.define_plan(code=data["code"], tier=data["tier"], interval=data["interval"], **terms)
        obj.pk = plan.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass  # prices and rates were written by the command

    archive = each_plan("Archive (no new subscriptions; existing ones stay)", "Archive", commands.archive_plan)
    restore = each_plan("Offer again", "Restore", commands.restore_plan)
