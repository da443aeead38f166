from django.urls import path
from rest_framework.routers import SimpleRouter

from notifications.api import views

router = SimpleRouter()
router.register("webhook-endpoints", views.EndpointViewSet, basename="webhook-endpoint")
router.register("webhook-deliveries", views.DeliveryViewSet, basename="webhook-delivery")
router.register("notifications", views.NotificationViewSet, basename="notification")

urlpatterns = [*router.urls, path("notifications-bounces/", views.BounceView.as_view(), name="notification-bounces")]
