"""Staff timelines: the stored events of a subscription, customer or correlation id in order, each
with its cause, payload and the handlers that reacted (pink when pending or failed). A subscription's
timeline is ``subscriptions.queries.timeline`` — the same lineage ``GET /subscriptions/{id}/events/`` shows."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from sharedkernel.lineage import lineage
from sharedkernel.models import StoredEvent
from subscriptions import queries
from subscriptions.models import Subscription


@staff_member_required
def timeline(request):
    kind, key = next(
        ((k, request.GET[k]) for k in ("subscription", "customer", "correlation") if request.GET.get(k)), ("", "")
    )
    events = StoredEvent.objects.none()
    error = "" if kind else "Name a subscription, customer or correlation id."
    try:
        if kind == "subscription":
            sub = Subscription.objects.filter(pk=key).first()
            events = queries.timeline(sub) if sub else events
            error = "" if sub else "No such subscription."
        elif kind == "customer":
            events = StoredEvent.objects.filter(position__in=lineage(key)).order_by("position")
        elif kind == "correlation":
            events = StoredEvent.objects.filter(correlation_id=key).order_by("position")
    except Exception:  # a malformed id
        error = f"Not a valid {kind} id."
        events = StoredEvent.objects.none()
    rows = list(events.prefetch_related("deliveries")[:2000])
    ids = {str(e.event_id) for e in rows}
    status = 400 if error and kind != "subscription" else (404 if error else 200)
    return render(
        request,
        "sharedkernel/timeline.html",
        {"kind": kind, "key": key, "events": rows, "known": ids, "error": error},
        status=status if error else 200,
    )
