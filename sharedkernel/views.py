"""Staff pages of the kernel: the living event-storming board (built from :mod:`sharedkernel.catalog`)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Count
from django.shortcuts import render
from django.utils import timezone

from sharedkernel import bus
from sharedkernel.catalog import catalog
from sharedkernel.models import DeliveryStatus, EventDelivery, StoredEvent


@staff_member_required
def board(request):
    entries = catalog()
    since = timezone.now() - timedelta(hours=24)
    counts = dict(
        StoredEvent.objects.filter(recorded_at__gte=since)
        .values_list("event_type")
        .annotate(n=Count("position"))
        .values_list("event_type", "n")
    )
    open_rows = (
        EventDelivery.objects.exclude(status=DeliveryStatus.DONE)
        .values_list("handler", "status")
        .annotate(n=Count("id"))
        .values_list("handler", "status", "n")
    )
    hot: dict[str, dict[str, int]] = {}
    for handler, status, n in open_rows:
        hot.setdefault(handler, {}).setdefault("failed" if status == DeliveryStatus.FAILED else "pending", 0)
        hot[handler]["failed" if status == DeliveryStatus.FAILED else "pending"] += n
    lanes = []
    found = dict.fromkeys([e.context for e in entries] + [h.context for h in bus.HANDLERS.values()])
    # lanes left to right in the order the main flows run (BOARD_LANE_ORDER); any other context after
    order = [c for c in getattr(settings, "BOARD_LANE_ORDER", []) if c in found]
    for context in [*order, *(c for c in found if c not in order)]:
        lanes.append(
            {
                "context": context,
                "events": [
                    {"entry": e, "last_24h": counts.get(e.event_type, 0)} for e in entries if e.context == context
                ],
                "policies": [
                    {
                        "name": h.name,
                        "patterns": h.patterns,
                        "read_model": h.replay_safe,
                        "pending": hot.get(h.name, {}).get("pending", 0),
                        "failed": hot.get(h.name, {}).get("failed", 0),
                    }
                    for h in sorted(bus.HANDLERS.values(), key=lambda h: h.name)
                    if h.context == context
                ],
            }
        )
    return render(request, "sharedkernel/board.html", {"lanes": lanes})
