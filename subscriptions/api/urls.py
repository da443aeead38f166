from django.urls import path
from rest_framework.routers import SimpleRouter

from subscriptions.api import customers, plans, price_migrations, subscriptions, usage

router = SimpleRouter()
router.register("plans", plans.PlanViewSet, basename="plan")
router.register("customers", customers.CustomerViewSet, basename="customer")
router.register("subscriptions", subscriptions.SubscriptionViewSet, basename="subscription")
router.register("price-migrations", price_migrations.PriceMigrationViewSet, basename="price-migration")

urlpatterns = [*router.urls, path("usage/", usage.UsageView.as_view(), name="usage")]
