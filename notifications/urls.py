from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("preferences/", views.preferences, name="preferences"),
    path("webhooks/", views.webhooks, name="webhooks"),
    path("webhooks/deliveries/<uuid:delivery_id>/redeliver/", views.redeliver, name="redeliver"),
]
