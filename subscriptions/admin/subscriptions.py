"""Staff edges of subscriptions: every action calls a command; status and prices are never edited.

Nothing here writes a model directly: forms collect input and call a command, actions call a
command per selected row."""

from __future__ import annotations

from functools import partial

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime

from sharedkernel.adminkit import CommandDrivenAdmin, form_action, render_add_page
from sharedkernel.errors import DomainError
from subscriptions import commands
from subscriptions.admin.actions import command_action
from subscriptions.admin.columns import timeline_column
from subscriptions.models import (
    Customer,
    Plan,
    ResumeInitiator,
    Subscription,
)

each_subscription = partial(command_action, key="subscription_id")


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

    timeline = timeline_column("subscription_id")

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
        return render_add_page(
            self, request, form, title="Add subscription", template="admin/subscriptions/subscription_add.html"
        )

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

    cancel_now = each_subscription("Cancel now", "Cancel", commands.cancel_subscription, reason="cancelled by staff")
    cancel_at_period_end = each_subscription(
        "Cancel at period end",
        "Schedule cancellation",
        commands.cancel_subscription,
        reason="cancelled by staff",
        at_period_end=True,
    )
    suspend = each_subscription("Suspend (pause collection and service)", "Suspend", commands.suspend_subscription)
    resume = each_subscription("Resume", "Resume", commands.resume_subscription, initiator=ResumeInitiator.STAFF)
    approve_plan_change = each_subscription("Approve requested plan change", "Approve", commands.approve_plan_change)
    decline_plan_change = each_subscription("Decline requested plan change", "Decline", commands.decline_plan_change)

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
