from django.urls import path

from subscriptions import views

app_name = "subscriptions"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("plans/", views.plans, name="plans"),
    path("subscribe/<slug:code>/", views.subscribe, name="subscribe"),
    path("subscriptions/<uuid:subscription_id>/cancel/", views.cancel, name="cancel"),
    path("subscriptions/<uuid:subscription_id>/resume/", views.resume, name="resume"),
    path("subscriptions/<uuid:subscription_id>/change-plan/", views.change_plan, name="change_plan"),
    path("subscriptions/<uuid:subscription_id>/usage/", views.usage_page, name="usage"),
]
