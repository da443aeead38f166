"""API of the plumbing: the event store (staff) and test clocks (staff)."""

from __future__ import annotations

import django_filters
from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from sharedkernel.api.errors import error_response
from sharedkernel.api.filters import WholeNumberFilter
from sharedkernel.api.permissions import IsStaff
from sharedkernel.api.schema import error_response as documented_error
from sharedkernel.eventstore import to_domain_event
from sharedkernel.models import StoredEvent, TestClock
from sharedkernel.scheduling import request_advance, wait_for_advance


class StoredEventSerializer(serializers.Serializer):
    """The envelope of a stored event, its payload upcast to the current version."""

    position = serializers.IntegerField()
    event_id = serializers.UUIDField()
    event_type = serializers.CharField()
    event_version = serializers.IntegerField()
    occurred_on = serializers.DateTimeField()
    aggregate_type = serializers.CharField()
    aggregate_id = serializers.CharField()
    aggregate_version = serializers.IntegerField()
    payload = serializers.JSONField()
    correlation_id = serializers.CharField()
    causation_id = serializers.CharField(allow_null=True)

    def to_representation(self, instance: StoredEvent) -> dict:
        return to_domain_event(instance).to_json()


class EventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter(method="filter_type", help_text="Event type, or several separated by commas.")
    aggregate_id = django_filters.CharFilter()
    correlation_id = django_filters.CharFilter()
    after = WholeNumberFilter(field_name="position", lookup_expr="gt", help_text="Global position.")

    class Meta:
        model = StoredEvent
        fields = ["type", "aggregate_id", "correlation_id", "after"]

    def filter_type(self, queryset, name, value):
        types = [t.strip() for t in value.split(",") if t.strip()]
        return queryset.filter(event_type__in=types)


class EventListView(generics.ListAPIView):
    """The event store in global order (staff)."""

    permission_classes = [IsStaff]
    serializer_class = StoredEventSerializer
    filterset_class = EventFilter
    queryset = StoredEvent.objects.order_by("position")


class TestClockSerializer(serializers.ModelSerializer):
    class Meta:
        model = TestClock
        fields = ["id", "name", "frozen_time", "status", "advance_to", "advance_error", "created_at"]
        read_only_fields = ["id", "status", "advance_to", "advance_error", "created_at"]

    def validate_frozen_time(self, value):
        horizon = settings.TEST_CLOCK_MAX_ADVANCE
        if value > timezone.now() + horizon:
            raise serializers.ValidationError(f"A test clock starts at most {horizon.days} days from now.")
        return value


class TestClockListCreateView(generics.ListCreateAPIView):
    """Stripe-like test clocks: customers created with ``test_clock`` live on its frozen time."""

    __test__ = False
    permission_classes = [IsStaff]
    serializer_class = TestClockSerializer
    queryset = TestClock.objects.all()


class TestClockDetailView(generics.RetrieveAPIView):
    __test__ = False
    permission_classes = [IsStaff]
    serializer_class = TestClockSerializer
    queryset = TestClock.objects.all()


class AdvanceInput(serializers.Serializer):
    to = serializers.DateTimeField()


class TestClockAdvanceView(APIView):
    """Runs every due job for the clock's customers up to ``to``, in workers; the request waits for it
    up to TEST_CLOCK_REQUEST_WAIT_SECONDS. Past that, 202 and the clock as it is: poll its GET."""

    __test__ = False
    permission_classes = [IsStaff]

    @extend_schema(
        request=AdvanceInput,
        responses={
            200: OpenApiResponse(TestClockSerializer, "Done: the clock is at `to` and every consequence handled."),
            202: OpenApiResponse(
                TestClockSerializer,
                "Still advancing after the request's wait: `status` is `advancing`, `frozen_time` the time "
                "reached so far, `advance_to` the target. Poll `GET /test-clocks/{id}/` until `status` is `ready`.",
            ),
            500: documented_error(
                "`test_clock_advance_failed`: a job raised or its consequences did not settle; the clock is "
                "ready at the time it reached (`details.test_clock`), the error in its `advance_error`."
            ),
        },
    )
    def post(self, request, pk):
        clock = generics.get_object_or_404(TestClock, pk=pk)
        data = AdvanceInput(data=request.data)
        data.is_valid(raise_exception=True)
        request_advance(str(clock.pk), data.validated_data["to"])
        clock = wait_for_advance(str(clock.pk), settings.TEST_CLOCK_REQUEST_WAIT_SECONDS)
        body = TestClockSerializer(clock).data
        if clock.status == TestClock.Status.ADVANCING:
            return Response(body, status=status.HTTP_202_ACCEPTED)
        if clock.advance_error:
            return error_response(
                500,
                "test_clock_advance_failed",
                f"The advance stopped at {clock.frozen_time.isoformat()}: {clock.advance_error}",
                {"test_clock": body},
            )
        return Response(body, status=status.HTTP_200_OK)
