from django.urls import path
from rest_framework.routers import SimpleRouter

from billing.api import views

router = SimpleRouter()
router.register("invoices", views.InvoiceViewSet, basename="invoice")
router.register("payments", views.PaymentViewSet, basename="payment")

urlpatterns = [
    *router.urls,
    path("customers/<uuid:pk>/payment-method/", views.PaymentMethodView.as_view(), name="customer-payment-method"),
    path("customers/<uuid:pk>/balance/", views.BalanceView.as_view(), name="customer-balance"),
    path("customers/<uuid:pk>/credits/", views.CreditView.as_view(), name="customer-credits"),
    path("subscriptions/<uuid:pk>/proration-preview/", views.ProrationPreviewView.as_view(), name="proration-preview"),
    path("subscriptions/<uuid:pk>/upcoming-invoice/", views.UpcomingInvoiceView.as_view(), name="upcoming-invoice"),
    path("subscriptions/<uuid:pk>/coupon/", views.CouponView.as_view(), name="subscription-coupon"),
]
