from django.urls import path

from analytics.api import views

urlpatterns = [
    path("analytics/mrr/", views.MrrView.as_view(), name="analytics-mrr"),
    path("analytics/churn/", views.ChurnView.as_view(), name="analytics-churn"),
    path("analytics/revenue/", views.RevenueView.as_view(), name="analytics-revenue"),
    path(
        "price-migrations/<uuid:migration_id>/impact/",
        views.PriceMigrationImpactView.as_view(),
        name="price-migration-impact",
    ),
]
