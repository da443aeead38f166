"""REST edges of usage: RecordUsage and a subscription's usage of the open period. Thin: validate, call a command, represent."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from sharedkernel.api.permissions import customer_id_of
from sharedkernel.errors import InvalidInput
from subscriptions import commands, queries
from subscriptions.models import Subscription
from subscriptions.usage_parsing import MAX_BATCH
from subscriptions.values import MAX_QUANTITY

USAGE_RECORD = inline_serializer(
    "UsageRecordIn",
    {
        "subscription": serializers.UUIDField(),
        "metric": serializers.CharField(),
        "quantity": serializers.IntegerField(min_value=0, max_value=MAX_QUANTITY),
        "timestamp": serializers.DateTimeField(),
        "idempotency_key": serializers.CharField(max_length=100),
    },
)
USAGE_RESULT = inline_serializer(
    "UsageAccepted",
    {
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "errors": inline_serializer(
            "UsageRecordError",
            {
                "index": serializers.IntegerField(),
                "field": serializers.CharField(),
                "code": serializers.CharField(),
                "message": serializers.CharField(),
            },
            many=True,
        ),
    },
)


class UsageView(APIView):
    """RecordUsage: one record or a list of up to 1,000.

    Records are validated one by one and plain Python does it (no serializer per
    record: a batch must cost milliseconds). Valid records are accepted even when
    others in the batch are refused; refusals come back in ``errors`` by index.
    """

    @extend_schema(
        request=USAGE_RECORD,
        responses={200: USAGE_RESULT},
        summary="Report usage: a record or a list of up to 1,000 (deduplicated by idempotency_key)",
    )
    def post(self, request):
        body = request.data if request.stream is not None else None  # no body is not an empty record
        records = body if isinstance(body, list) else [body] if isinstance(body, dict) else None
        if records is None or not records:
            raise InvalidInput("Send a usage record or a non-empty list of them.", details={"body": "record or list"})
        if len(records) > MAX_BATCH:
            raise InvalidInput(
                f"At most {MAX_BATCH} records per call; split the batch.",
                details={"body": f"{len(records)} records"},
            )
        own = None if request.user.is_staff else (customer_id_of(request.user) or uuid.UUID(int=0))
        result = commands.record_usage(records, customer_id=own)
        if result.errors and not (result.accepted or result.duplicates):
            # Nothing was taken: a 2xx would read as "recorded". A batch that is partly taken answers
            # 200 and lists the refused records, so the client resends only those.
            first = result.errors[0]
            raise InvalidInput(
                first["message"] if len(records) == 1 else f"No record was accepted: {first['message']}",
                code="usage_refused",
                details={"errors": result.errors},
            )
        return Response({"accepted": result.accepted, "duplicates": result.duplicates, "errors": result.errors})


def usage_payload(sub: Subscription) -> dict:
    return {
        "subscription": str(sub.pk),
        "period_start": serializers.DateTimeField().to_representation(sub.current_period_start),
        "period_end": serializers.DateTimeField().to_representation(sub.current_period_end),
        "metrics": [
            {
                "metric": m.metric,
                "used": m.used,
                "included": m.included,
                "overage": m.overage,
                "rate": m.rate.to_json() if m.rate is not None else None,
                "overage_amount": m.overage_amount.to_json() if m.overage_amount is not None else None,
            }
            for m in queries.usage_of(sub)
        ],
    }
