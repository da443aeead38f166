"""Staff edges of customers: registration through the command, their subscriptions inline.

Nothing here writes a model directly: forms collect input and call a command, actions call a
command per selected row."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from sharedkernel.adminkit import CommandDrivenAdmin
from subscriptions import commands
from subscriptions.admin.columns import timeline_column
from subscriptions.models import (
    Customer,
    Subscription,
)
from subscriptions.values import CustomerDetails


class CustomerAddForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = [*CustomerDetails.names(), "test_clock"]


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
        *CustomerDetails.names(),
        "user",
        "test_clock",
        "has_payment_method",
        "created_at",
        "version",
    ]

    timeline = timeline_column("customer_id")

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
            **{name: data[name] for name in CustomerDetails.names()},
            test_clock_id=data["test_clock"].pk if data.get("test_clock") else None,
        )
        obj.pk = customer.pk
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        pass
