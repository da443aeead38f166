from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("export/<slug:view>.csv", views.export_csv, name="export"),
    path("price-migrations/<uuid:migration_id>/impact/", views.price_impact, name="price-impact"),
    path("price-migrations/<uuid:migration_id>/impact.csv", views.price_impact_csv, name="price-impact-csv"),
]
