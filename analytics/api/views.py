"""Analytics API (staff): MRR, churn, revenue."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import queries
from sharedkernel.api.permissions import IsStaff
from sharedkernel.api.schema import error_response
from sharedkernel.errors import InvalidInput
from sharedkernel.values import is_currency


class MrrView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(parameters=[OpenApiParameter("currency", str)], responses=dict, summary="MRR now, over time")
    def get(self, request):
        currency = (request.query_params.get("currency") or "").upper()
        wanted = [currency] if currency else queries.currencies()
        if currency and not is_currency(currency):
            raise InvalidInput("Not an ISO 4217 currency.", details={"currency": currency})
        return Response(
            {
                "results": [
                    {
                        "currency": c,
                        "mrr": queries.current_mrr(c).to_json(),
                        "series": [
                            {
                                "date": p.day.isoformat(),
                                "mrr": p.mrr.to_json(),
                                "movements": {k: v.to_json() for k, v in p.movements.items()},
                            }
                            for p in queries.mrr_series(c)
                        ],
                    }
                    for c in wanted
                ]
            }
        )


class ChurnView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        parameters=[OpenApiParameter("period", str, enum=["month"])],
        responses=dict,
        summary="Churn rate per month: cancelled ÷ active at its start",
    )
    def get(self, request):
        if request.query_params.get("period", "month") != "month":
            raise InvalidInput("Churn is reported per month.", details={"period": "month"})
        return Response(
            {
                "results": [
                    {
                        "period": c.month.isoformat(),
                        "active_at_start": c.active_at_start,
                        "cancelled": c.cancelled,
                        "rate": f"{c.rate:.4f}",
                    }
                    for c in queries.churn(months=120)
                ]
            }
        )


class RevenueView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        parameters=[OpenApiParameter("group", str, enum=["month", "quarter", "year"])],
        responses=dict,
        summary="Payments net of refunds by period, plan and currency",
    )
    def get(self, request):
        group = request.query_params.get("group", "month")
        if group not in queries.TRUNC:
            raise InvalidInput("group is month, quarter or year.", details={"group": group})
        return Response(
            {
                "results": [
                    {
                        "period": r["period"].isoformat(),
                        "plan": r["plan"],
                        "currency": r["currency"],
                        "revenue": r["revenue"].to_json(),
                        "refunds": r["refunds"].to_json(),
                    }
                    for r in queries.revenue(group)
                ]
            }
        )


def _money_rows(rows: list[dict]) -> list[dict]:
    return [{k: (v.to_json() if hasattr(v, "to_json") else v) for k, v in row.items()} for row in rows]


class PriceMigrationImpactView(APIView):
    """What a price migration would have done over the last N months, replayed from the event store."""

    permission_classes = [IsStaff]

    @extend_schema(
        parameters=[OpenApiParameter("months", int)],
        responses={
            200: dict,
            400: error_response("months is not from 1 to 24"),
            404: error_response("no such price migration"),
        },
        summary="Price migration impact",
    )
    def get(self, request, migration_id):
        from analytics import impact
        from sharedkernel.clock import SystemClock
        from sharedkernel.errors import NotFound

        raw = request.query_params.get("months", "6")
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 24:
            raise InvalidInput("months must be a whole number from 1 to 24.", details={"months": raw})
        try:
            result = impact.impact_of(str(migration_id), now=SystemClock().now(), months=int(raw))
        except impact.UnknownMigration:
            raise NotFound("No such price migration.", details={"id": str(migration_id)}) from None
        return Response(
            {
                "months": _money_rows(result.months),
                "projection": _money_rows(result.projection),
                "assumptions": result.assumptions,
                "customers": _money_rows(result.customers),
                "overage": _money_rows(result.overage),
                "invoices": _money_rows(result.invoices),
            }
        )
