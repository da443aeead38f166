"""REST edges of the Billing context. Thin: validate, call a command, represent."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from billing import commands, queries
from billing.api.serializers import InvoiceOut, LineOut, PaymentOut
from billing.models import BilledSubscription, BillingAccount, Invoice, Payment
from sharedkernel.api.fields import MoneyField
from sharedkernel.api.permissions import CustomerScopedMixin, IsStaff, customer_id_of
from sharedkernel.api.schema import error_response
from sharedkernel.errors import InvalidInput, NotFound
from sharedkernel.values import Money


def _visible(request, customer_id) -> bool:
    user = request.user
    return user.is_staff or str(customer_id_of(user)) == str(customer_id)


# -- invoices ----------------------------------------------------------------------------


class InvoiceFilter(django_filters.FilterSet):
    customer = django_filters.UUIDFilter(field_name="customer_id")
    subscription = django_filters.UUIDFilter(field_name="subscription_id")
    status = django_filters.ChoiceFilter(choices=Invoice._meta.get_field("status").choices)

    class Meta:
        model = Invoice
        fields = ["customer", "subscription", "status"]


class InvoiceViewSet(CustomerScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Invoices, newest first. A customer sees their own; staff see all and may void."""

    serializer_class = InvoiceOut
    filterset_class = InvoiceFilter

    class VoidInput(serializers.Serializer):
        reason = serializers.CharField(max_length=300)

    def get_queryset(self):
        return self.scope_queryset(Invoice.objects.prefetch_related("lines").order_by("-created_at", "-id"))

    def get_permissions(self):
        return [IsStaff()] if self.action == "void" else super().get_permissions()

    def _respond(self, invoice_id) -> Response:
        return Response(InvoiceOut(self.get_queryset().get(pk=invoice_id)).data)

    @extend_schema(request=None, responses=InvoiceOut, summary="Retry the payment now with the current payment method")
    @action(detail=True, methods=["post"])
    def pay(self, request, pk=None):
        """Charge the invoice now, once: the answer is recorded before this responds (200 with the invoice).

        The invoice is locked while the attempt is recorded, so concurrent calls (and the payment
        policy) never start two attempts. While an attempt of this invoice is at the gateway a second
        call answers 409 ``payment_in_progress`` and charges nothing — retry after a moment or read
        ``GET /payments/?invoice=``; a paid (or voided) invoice answers 409 ``invalid_transition``.
        """
        invoice = self.get_object()
        commands.pay_invoice(invoice_id=str(invoice.pk))
        return self._respond(invoice.pk)

    @extend_schema(request=VoidInput, responses=InvoiceOut, summary="Void a draft or unpaid invoice (staff)")
    @action(detail=True, methods=["post"])
    def void(self, request, pk=None):
        invoice = self.get_object()
        data = self.VoidInput(data=request.data)
        data.is_valid(raise_exception=True)
        # The invoice as the command left it (read in its transaction), not a later read.
        return Response(
            InvoiceOut(commands.void_invoice(invoice_id=str(invoice.pk), reason=data.validated_data["reason"])).data
        )


# -- payments ----------------------------------------------------------------------------


class PaymentFilter(django_filters.FilterSet):
    invoice = django_filters.UUIDFilter(field_name="invoice_id")
    customer = django_filters.UUIDFilter(field_name="customer_id")
    status = django_filters.ChoiceFilter(choices=Payment._meta.get_field("status").choices)

    class Meta:
        model = Payment
        fields = ["invoice", "customer", "status"]


class PaymentViewSet(CustomerScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PaymentOut
    filterset_class = PaymentFilter

    class RefundInput(serializers.Serializer):
        amount = MoneyField(positive=True)
        reason = serializers.CharField(max_length=300)

    def get_queryset(self):
        return self.scope_queryset(
            Payment.objects.prefetch_related("attempt_rows", "refunds").order_by("-created_at", "-id")
        )

    def get_permissions(self):
        return [IsStaff()] if self.action == "refund" else super().get_permissions()

    @extend_schema(request=RefundInput, responses={201: PaymentOut}, summary="Refund (staff); total ≤ paid")
    @action(detail=True, methods=["post"])
    def refund(self, request, pk=None):
        payment = self.get_object()
        data = self.RefundInput(data=request.data)
        data.is_valid(raise_exception=True)
        commands.refund_payment(payment_id=str(payment.pk), **data.validated_data)
        return Response(PaymentOut(self.get_queryset().get(pk=payment.pk)).data, status=status.HTTP_201_CREATED)


# -- customer money matters -----------------------------------------------------------------


class _CustomerScoped(GenericAPIView):
    def account(self, request, pk) -> BillingAccount:
        if not _visible(request, pk):
            raise NotFound("No such customer.")
        account = BillingAccount.objects.filter(pk=pk).first()
        if account is None:
            raise NotFound("No such customer.")
        return account


PAYMENT_METHOD_OUT = inline_serializer(
    "PaymentMethod",
    {"customer": serializers.UUIDField(), "brand": serializers.CharField(), "last4": serializers.CharField()},
)


class PaymentMethodView(_CustomerScoped):
    class TokenInput(serializers.Serializer):
        token = serializers.CharField(max_length=100)

    serializer_class = TokenInput

    @extend_schema(request=TokenInput, responses=PAYMENT_METHOD_OUT, summary="Set the payment method (gateway token)")
    def put(self, request, pk):
        self.account(request, pk)
        data = self.TokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = commands.update_payment_method(customer_id=str(pk), token=data.validated_data["token"])
        return Response({"customer": str(pk), "brand": account.payment_brand, "last4": account.payment_last4})


BALANCE_OUT = inline_serializer(
    "Balance", {"credit": MoneyField(), "balances": serializers.ListField(child=MoneyField())}
)


class BalanceView(_CustomerScoped):
    serializer_class = None

    @extend_schema(responses=BALANCE_OUT, summary="Credit balance (in the customer's currency, and all others)")
    def get(self, request, pk):
        return Response(_balance(self.account(request, pk)))


def _balance(account: BillingAccount) -> dict:
    others = sorted(c for c in account.credit_minor if c != account.currency)
    return {
        "credit": account.credit(account.currency).to_json(),
        "balances": [account.credit(c).to_json() for c in [account.currency, *others]],
    }


class CreditView(_CustomerScoped):
    permission_classes = [IsStaff]

    class CreditInput(serializers.Serializer):
        amount = MoneyField(positive=True)
        reason = serializers.CharField(max_length=300)

    serializer_class = CreditInput

    @extend_schema(request=CreditInput, responses={201: BALANCE_OUT}, summary="Grant account credit (staff)")
    def post(self, request, pk):
        self.account(request, pk)
        data = self.CreditInput(data=request.data)
        data.is_valid(raise_exception=True)
        commands.grant_credit(customer_id=str(pk), **data.validated_data)
        return Response(_balance(self.account(request, pk)), status=status.HTTP_201_CREATED)


# -- previews ------------------------------------------------------------------------------


def _subscription(request, pk) -> BilledSubscription:
    sub = BilledSubscription.objects.filter(pk=pk).first()
    if sub is None or not _visible(request, sub.customer_id):
        raise NotFound("No such subscription.")
    return sub


PRORATION_OUT = inline_serializer(
    "ProrationPreview",
    {
        "lines": inline_serializer(
            "ProrationLine", {"description": serializers.CharField(), "amount": MoneyField()}, many=True
        ),
        "net": MoneyField(),
        "needs_approval": serializers.BooleanField(),
        "message": serializers.CharField(),
    },
)


class ProrationPreviewView(GenericAPIView):
    serializer_class = None

    @extend_schema(
        parameters=[OpenApiParameter("plan", str, required=True, description="The plan to change to")],
        responses={
            200: PRORATION_OUT,
            409: error_response(
                "The change-plan command would refuse this change; `code` is the command's own "
                "(`same_plan`, `downgrade_during_trial`, `invalid_transition`, ...)."
            ),
        },
        summary="What changing plan now would charge (net > 0) or credit (net < 0), or that it waits for approval",
    )
    def get(self, request, pk):
        sub = _subscription(request, pk)
        plan = request.query_params.get("plan")
        if not plan:
            raise InvalidInput("Say which plan to preview.", details={"plan": "This query parameter is required."})
        # the same answer the customer page shows: refused with the change-plan command's 409
        # code, waiting for approval (nothing charged now), or the proration charged/credited
        preview = queries.plan_change_preview(subscription_id=str(sub.pk), plan_id=plan)
        lines = preview.proration.lines if preview.proration else ()
        net = preview.proration.net if preview.proration else Money.zero(sub.currency)
        return Response(
            {
                "lines": [{"description": line.description, "amount": line.amount.to_json()} for line in lines],
                "net": net.to_json(),
                "needs_approval": preview.needs_approval,
                "message": preview.message,
            }
        )


class UpcomingInvoiceView(GenericAPIView):
    serializer_class = None

    @extend_schema(
        responses=inline_serializer(
            "UpcomingInvoice",
            {
                "lines": LineOut(many=True),
                "subtotal": MoneyField(),
                "tax": MoneyField(),
                "total": MoneyField(),
                "credit_applied": MoneyField(),
                "amount_due": MoneyField(),
                "period_start": serializers.DateTimeField(),
                "period_end": serializers.DateTimeField(),
            },
        ),
        summary="The invoice the next renewal will produce",
    )
    def get(self, request, pk):
        sub = _subscription(request, pk)
        upcoming = queries.upcoming_invoice(subscription_id=str(sub.pk))
        return Response(
            {
                "lines": [
                    {
                        "description": line.description,
                        "kind": line.kind.value,
                        "amount": line.amount.to_json(),
                        "quantity": line.quantity,
                        "metric": line.metric,
                    }
                    for line in upcoming.lines
                ],
                "subtotal": upcoming.subtotal.to_json(),
                "tax": upcoming.tax.to_json(),
                "total": upcoming.total.to_json(),
                "credit_applied": upcoming.credit_applied.to_json(),
                "amount_due": upcoming.amount_due.to_json(),
                "period_start": serializers.DateTimeField().to_representation(upcoming.period.start),
                "period_end": serializers.DateTimeField().to_representation(upcoming.period.end),
            }
        )


class CouponView(GenericAPIView):
    class CouponInput(serializers.Serializer):
        code = serializers.CharField(max_length=40)

    serializer_class = CouponInput

    @extend_schema(
        request=CouponInput,
        responses={
            201: inline_serializer(
                "Discount", {"coupon": serializers.CharField(), "description": serializers.CharField()}
            )
        },
        summary="Apply a coupon to the subscription's invoices",
    )
    def post(self, request, pk):
        sub = _subscription(request, pk)
        data = self.CouponInput(data=request.data)
        data.is_valid(raise_exception=True)
        discount = commands.apply_coupon(subscription_id=str(sub.pk), code=data.validated_data["code"])
        return Response(
            {"coupon": discount.coupon.code, "description": discount.coupon.describe()}, status=status.HTTP_201_CREATED
        )
