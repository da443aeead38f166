from django.urls import path
from rest_framework.routers import SimpleRouter

from subscriptions.api import views

router = SimpleRouter()
router.register("plans", views.PlanViewSet, basename="plan")
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")

urlpatterns = [*router.urls, path("usage/", views.UsageView.as_view(), name="usage")]
