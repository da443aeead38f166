from django.urls import path
from rest_framework.routers import SimpleRouter

from subscriptions.api import price_migrations, views

router = SimpleRouter()
router.register("plans", views.PlanViewSet, basename="plan")
router.register("customers", views.CustomerViewSet, basename="customer")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")
router.register("price-migrations", price_migrations.PriceMigrationViewSet, basename="price-migration")

urlpatterns = [*router.urls, path("usage/", views.UsageView.as_view(), name="usage")]
