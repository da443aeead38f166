from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("preferences/", views.preferences, name="preferences"),
    path("webhooks/", views.webhooks, name="webhooks"),
    path("webhooks/deliveries/<uuid:delivery_id>/redeliver/", views.redeliver, name="redeliver"),
    path("webhooks/<uuid:endpoint_id>/enable/", views.enable_endpoint, name="enable_endpoint"),
    path("webhooks/<uuid:endpoint_id>/disable/", views.disable_endpoint, name="disable_endpoint"),
    path("webhooks/<uuid:endpoint_id>/remove/", views.remove_endpoint, name="remove_endpoint"),
]
