"""Staff admin of the Billing context.

Invoices, payments and credits are read-only: every change goes through a
command (retry payment, void, refund, grant credit), so no action edits a status
or an amount directly. Tax rates, the dunning schedule and coupons are
configuration and are edited here.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from billing import commands
from billing.models import (
    BillingAccount,
    Coupon,
    CreditEntry,
    DunningQueue,
    DunningSchedule,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAttempt,
    Refund,
    TaxRate,
)
from sharedkernel.adminkit import (
    CommandDrivenAdmin,
    ReadOnlyAdmin,
    form_action,
    format_moment,
    moment_column,
    run_for_each,
    timeline_link,
)
from sharedkernel.errors import InvalidInput, InvalidTransition
from sharedkernel.values import AmountRefused, Money


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class LineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ["position", "kind", "description", "amount_display", "quantity", "metric"]
    readonly_fields = fields

    @admin.display(description="Amount")
    def amount_display(self, line):
        return line.amount


class MoneyForm(forms.Form):
    amount = forms.DecimalField(max_digits=14, decimal_places=3, min_value=0)
    reason = forms.CharField(max_length=300)


class VoidForm(forms.Form):
    reason = forms.CharField(max_length=300, initial="Voided by staff")


def _money(amount, currency) -> Money:
    """The API's strict reading of an amount (docs/api-input.md), refused as a message in the admin."""
    try:
        return Money.parse(str(amount), currency)
    except AmountRefused as exc:
        raise InvalidInput(exc.message, details={exc.field: exc.message}) from None


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "customer_name", "status", "billing_reason", "total", "amount_due", "issued_at"]
    list_filter = ["status", "billing_reason", "currency"]
    search_fields = ["number", "customer_name", "customer_email", "=id", "=subscription_id", "=customer_id"]
    date_hierarchy = "created_at"
    inlines = [LineInline]
    actions = ["retry_payment", "void", "refund"]
    readonly_fields = ["documents", "timeline", *Invoice.TOTALS]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "number",
                    "status",
                    "billing_reason",
                    "documents",
                    "timeline",
                    "customer_name",
                    "customer_email",
                    "customer_id",
                    "subscription_id",
                    "plan_name",
                    "currency",
                    "period_start",
                    "period_end",
                ]
            },
        ),
        ("Totals", {"fields": list(Invoice.TOTALS)}),
        (
            "Tax",
            {"fields": ["tax_calculated", "tax_rate", "tax_jurisdiction", "tax_failures", "tax_retry_at", "tax_error"]},
        ),
        ("Life", {"fields": ["created_at", "issued_at", "paid_at", "voided_at", "void_reason", "test_clock_id"]}),
    ]

    @admin.display(description="Timeline")
    def timeline(self, invoice):
        return timeline_link(subscription_id=invoice.subscription_id, customer_id=invoice.customer_id)

    @admin.display(description="Document")
    def documents(self, invoice):
        page = reverse("billing:invoice", args=[invoice.pk])
        return format_html('<a href="{}">Printable page</a> · <a href="{}pdf/">PDF</a>', page, page)

    @admin.action(description="Retry payment now")
    def retry_payment(self, request, queryset):
        run_for_each(self, request, queryset, "Retry payment", lambda i: commands.pay_invoice(invoice_id=str(i.pk)))

    @admin.action(description="Void…")
    def void(self, request, queryset):
        return form_action(
            self,
            request,
            queryset,
            form_class=VoidForm,
            action="void",
            title="Void",
            intro="Voided invoices are not collected; credit they used goes back to the customer.",
            submit="Void",
            run=lambda invoice, data: commands.void_invoice(invoice_id=str(invoice.pk), reason=data["reason"]),
        )

    @admin.action(description="Refund…")
    def refund(self, request, queryset):
        def refund_one(invoice, data):
            payment = Payment.objects.filter(invoice_id=invoice.pk).first()
            if payment is None:
                raise InvalidTransition("This invoice has no payment.")
            commands.refund_payment(
                payment_id=str(payment.pk), amount=_money(data["amount"], invoice.currency), reason=data["reason"]
            )

        return form_action(
            self,
            request,
            queryset,
            form_class=MoneyForm,
            action="refund",
            title="Refund",
            intro="Refund this amount (in each invoice's currency) of what was paid. "
            "A credit note is issued; the total refunded never exceeds the payment.",
            submit="Refund",
            run=refund_one,
        )


class AttemptInline(ReadOnlyInline):
    model = PaymentAttempt
    fields = [*PaymentAttempt.SHOWN_FIELDS, "raw"]
    readonly_fields = fields


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ["credit_note_number", "created_at", "amount_display", "reason", "gateway_reference"]
    readonly_fields = fields

    @admin.display(description="Amount")
    def amount_display(self, refund):
        return refund.amount


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "invoice_number",
        "customer_name",
        "amount",
        "status",
        "attempts",
        moment_column("next_retry_at", "Next retry"),
        moment_column("paid_at", "Paid"),
    ]  # dunning levels and dates: the dunning queue
    list_filter = ["status", "currency", "dunning_level"]
    search_fields = ["invoice_number", "customer_name", "customer_email", "=id", "=invoice_id"]
    inlines = [AttemptInline, RefundInline]
    actions = ["retry_now"]
    readonly_fields = ["timeline"]

    @admin.display(description="Timeline")
    def timeline(self, payment):
        return timeline_link(subscription_id=payment.subscription_id, customer_id=payment.customer_id)

    @admin.action(description="Retry now with the customer's payment method")
    def retry_now(self, request, queryset):
        run_for_each(self, request, queryset, "Retry", lambda p: commands.pay_invoice(invoice_id=str(p.invoice_id)))


@admin.register(DunningQueue)
class DunningQueueAdmin(PaymentAdmin):
    """Who is being chased for money, at which step, and when the next attempt is."""

    list_display = [
        "invoice_number",
        "customer_name",
        "amount",
        "stage",
        "attempts",
        "next_attempt",
        "failure_message",
    ]
    list_filter = ["dunning_level", "currency"]
    ordering = ["next_retry_at", "next_dunning_at"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .filter(status="failed")
            .filter(Q(next_retry_at__isnull=False) | Q(next_dunning_at__isnull=False) | Q(exhausted_at__isnull=False))
        )

    @admin.display(description="Stage")
    def stage(self, p):
        if p.exhausted_at:
            return "exhausted (subscription suspended)"
        if p.dunning_started_at:
            return f"dunning step {p.dunning_level}"
        return f"retry {p.scheduled_failures} of the schedule"

    @admin.display(description="Next attempt")
    def next_attempt(self, p):
        return format_moment(p.next_retry_at or p.next_dunning_at)


class CreditForm(forms.Form):
    amount = forms.DecimalField(max_digits=14, decimal_places=3, min_value=0)
    currency = forms.CharField(max_length=3, help_text="Blank: the customer's currency", required=False)
    reason = forms.CharField(max_length=300, help_text="The customer sees this.")


@admin.register(BillingAccount)
class BillingAccountAdmin(CommandDrivenAdmin):
    list_display = [
        "name",
        "email",
        "currency",
        "country",
        "region",
        "tax_exempt",
        "payment_method_label",
        "credit_display",
    ]
    list_filter = ["currency", "country", "tax_exempt"]
    search_fields = ["name", "email", "=customer_id"]
    actions = ["grant_credit"]
    fields = [
        "name",
        "email",
        "customer_id",
        "currency",
        "country",
        "region",
        "tax_exempt",
        "address",
        "payment_method_label",
        "credit_display",
        "test_clock_id",
    ]
    #: Staff edit only the billing address; the rest comes from Subscriptions or a command.
    readonly_fields = [f for f in fields if f != "address"]

    def has_add_permission(self, request):
        return False  # accounts open from CustomerRegistered

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Payment method")
    def payment_method_label(self, account):
        return account.payment_method_label or "—"

    @admin.display(description="Credit")
    def credit_display(self, account):
        return ", ".join(str(account.credit(c)) for c in sorted(account.credit_minor)) or "—"

    def save_model(self, request, obj, form, change):
        BillingAccount.objects.filter(pk=obj.pk).update(address=obj.address)  # the billing address only

    @admin.action(description="Grant credit…")
    def grant_credit(self, request, queryset):
        def grant(account, data):
            amount = _money(data["amount"], (data["currency"] or account.currency).upper())
            commands.grant_credit(customer_id=str(account.pk), amount=amount, reason=data["reason"])

        return form_action(
            self,
            request,
            queryset,
            form_class=CreditForm,
            action="grant_credit",
            title="Grant credit",
            intro="The credit pays the customers' next invoices (CreditApplied).",
            submit="Grant",
            run=grant,
        )


@admin.register(CreditEntry)
class CreditEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "customer_id", "amount", "balance", "source", "reason"]
    list_filter = ["source", "currency"]
    search_fields = ["=customer_id", "reason"]


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    list_display = ["name", "country", "region", "rate", "active"]
    list_filter = ["country", "active"]
    search_fields = ["name", "country", "region"]


@admin.register(DunningSchedule)
class DunningScheduleAdmin(admin.ModelAdmin):
    list_display = ["name", "retry_offsets_hours", "escalation_offsets_days", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request):
        return not DunningSchedule.objects.exists()


@admin.register(Coupon)
class CouponAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "describe", "times_redeemed", "max_redemptions", "redeem_by", "active"]
    list_filter = ["duration", "active"]
    search_fields = ["code", "name"]
    readonly_fields = ["times_redeemed"]

    def get_readonly_fields(self, request, obj=None):
        # a redeemed coupon's terms are part of existing discounts
        if obj is not None and obj.times_redeemed:
            return [
                "code",
                "percent_off",
                "amount_off_minor",
                "currency",
                "duration",
                "duration_in_periods",
                "times_redeemed",
            ]
        return ["times_redeemed"]
