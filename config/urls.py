from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import staff, views
from notifications.views import demo_webhook_receiver
from sharedkernel.health import healthz
from sharedkernel.views import board, board_retry

api_v1 = [
    path("", include("sharedkernel.api.urls")),
    path("", include("subscriptions.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("notifications.api.urls")),
    path("", include("analytics.api.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", healthz, name="healthz"),
    # browsers ask for /favicon.ico on pages that name no icon (the admin, the API docs)
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("app/", include("subscriptions.urls")),
    path("billing/", include("billing.urls")),
    path("notifications/", include("notifications.urls")),
    path("staff/analytics/", include("analytics.urls")),
    path("demo/webhook-receiver/", demo_webhook_receiver, name="demo-webhook-receiver"),
    path("staff/board/", board, name="staff-board"),
    path("staff/board/retry/", board_retry, name="staff-board-retry"),
    path("staff/timeline/", staff.timeline, name="staff-timeline"),
    path("staff/timeline/retry/", staff.timeline_retry, name="staff-timeline-retry"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

handler404 = "config.views.not_found"
handler500 = "config.views.server_error"

admin.site.site_header = "SubscriptionHub staff"
admin.site.site_title = "SubscriptionHub"
admin.site.index_title = "Run the business"
admin.site.enable_nav_sidebar = False  # the lists need the width at 1280 px; Home lists every model
