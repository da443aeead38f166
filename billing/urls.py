from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("invoices/", views.invoices, name="invoices"),
    path("invoices/<uuid:invoice_id>/", views.invoice, name="invoice"),
    path("invoices/<uuid:invoice_id>/pdf/", views.invoice_pdf_download, name="invoice_pdf"),
    path("invoices/<uuid:invoice_id>/pay/", views.pay_invoice, name="pay_invoice"),
    path("payment-method/", views.payment_method, name="payment_method"),
    path("subscriptions/<uuid:subscription_id>/change-plan/", views.change_plan, name="change_plan"),
    path("subscriptions/<uuid:subscription_id>/coupon/", views.apply_coupon, name="coupon"),
]
