"""Output representations of the Billing API (field names are the contract of API.md)."""

from __future__ import annotations

from rest_framework import serializers

from billing.models import Invoice, InvoiceLine, Payment, PaymentAttempt, Refund
from sharedkernel.api.fields import MoneyField


class LineOut(serializers.ModelSerializer):
    amount = MoneyField()
    # A stored line without a metric says "", the upcoming invoice's lines say null.
    metric = serializers.CharField(allow_null=True, allow_blank=True, max_length=50)

    class Meta:
        model = InvoiceLine
        fields = ["description", "kind", "amount", "quantity", "metric"]


class InvoiceOut(serializers.ModelSerializer):
    customer = serializers.UUIDField(source="customer_id")
    subscription = serializers.UUIDField(source="subscription_id", allow_null=True)
    lines = LineOut(many=True)
    subtotal = MoneyField()
    tax = MoneyField()
    total = MoneyField()
    credit_applied = MoneyField()
    amount_due = MoneyField()
    amount_paid = MoneyField()
    url = serializers.CharField()
    pdf_url = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "customer",
            "subscription",
            "status",
            "billing_reason",
            "lines",
            *Invoice.TOTALS,
            "currency",
            "period_start",
            "period_end",
            "issued_at",
            "paid_at",
            "voided_at",
            "void_reason",
            "tax_error",
            "url",
            "pdf_url",
        ]

    def get_pdf_url(self, invoice: Invoice) -> str:
        return f"{invoice.url}pdf/"


class AttemptOut(serializers.ModelSerializer):
    class Meta:
        model = PaymentAttempt
        fields = list(PaymentAttempt.SHOWN_FIELDS)


class RefundOut(serializers.ModelSerializer):
    amount = MoneyField()

    class Meta:
        model = Refund
        fields = ["id", "amount", "reason", "credit_note_number", "gateway_reference", "created_at"]


class PaymentOut(serializers.ModelSerializer):
    invoice = serializers.UUIDField(source="invoice_id")
    customer = serializers.UUIDField(source="customer_id")
    subscription = serializers.UUIDField(source="subscription_id", allow_null=True)
    amount = MoneyField()
    amount_refunded = MoneyField()
    attempts = AttemptOut(many=True, source="attempt_rows")
    refunds = RefundOut(many=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "invoice",
            "invoice_number",
            "customer",
            "subscription",
            "status",
            "amount",
            "amount_refunded",
            "payment_method",
            "gateway_reference",
            "failure_code",
            "failure_message",
            "next_retry_at",
            "dunning_level",
            "next_dunning_at",
            "paid_at",
            "attempts",
            "refunds",
        ]
