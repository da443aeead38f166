from __future__ import annotations

from django.contrib import admin
from django.http import HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from analytics.models import Report, SubscriptionView
from sharedkernel.adminkit import ReadOnlyAdmin


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    """Monthly reports made by beat; download them as CSV."""

    list_display = ["month", "generated_at", "download"]

    def get_urls(self):
        return [
            path("<int:pk>/download/", self.admin_site.admin_view(self.download_view), name="analytics_report_csv"),
            *super().get_urls(),
        ]

    @admin.display(description="CSV")
    def download(self, report):
        return format_html('<a href="{}">Download</a>', reverse("admin:analytics_report_csv", args=[report.pk]))

    def download_view(self, request, pk):
        report = Report.objects.get(pk=pk)
        response = HttpResponse(report.csv, content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="report-{report.month:%Y-%m}.csv"'
        return response


@admin.register(SubscriptionView)
class SubscriptionViewAdmin(ReadOnlyAdmin):
    list_display = ["subscription_id", "plan_name", "status", "currency", "mrr", "churn_risk"]
    list_filter = ["status", "currency", "tier"]
