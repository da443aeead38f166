from django.urls import path

from sharedkernel.api import views

urlpatterns = [
    path("events/", views.EventListView.as_view(), name="event-list"),
    path("test-clocks/", views.TestClockListCreateView.as_view(), name="test-clock-list"),
    path("test-clocks/<uuid:pk>/", views.TestClockDetailView.as_view(), name="test-clock-detail"),
    path("test-clocks/<uuid:pk>/advance/", views.TestClockAdvanceView.as_view(), name="test-clock-advance"),
]
