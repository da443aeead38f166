"""Staff timelines: the stored events of a subscription, customer or correlation id as a tree of
causes — each event under the event that caused it (``causation_id``) — with its payload and the
handlers that reacted and when; a pending or failed delivery is a pink hot spot with a retry button.
A subscription's timeline is ``subscriptions.queries.timeline`` — the same lineage
``GET /subscriptions/{id}/events/`` shows."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from sharedkernel import bus
from sharedkernel.lineage import lineage
from sharedkernel.models import EventDelivery, StoredEvent
from subscriptions import queries
from subscriptions.models import Subscription

logger = logging.getLogger(__name__)


@dataclass
class Node:
    event: StoredEvent
    cause: StoredEvent | None = None
    children: list[Node] = field(default_factory=list)


def causation_tree(rows: list[StoredEvent]) -> list[Node]:
    """The events as a forest: each under its cause when the cause is shown too, else a root.
    Roots and each event's consequences stay in stored order."""
    nodes = {str(e.event_id): Node(e) for e in rows}
    roots = []
    for e in rows:  # stored order: a cause always comes before what it caused
        node = nodes[str(e.event_id)]
        parent = nodes.get(str(e.causation_id)) if e.causation_id else None
        if parent is None or parent is node:
            roots.append(node)
        else:
            node.cause = parent.event
            parent.children.append(node)
    return roots


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
    status = 400 if error and kind != "subscription" else (404 if error else 200)
    return render(
        request,
        "sharedkernel/timeline.html",
        {
            "kind": kind,
            "key": key,
            "events": rows,
            "tree": causation_tree(rows),
            "hot": sum(1 for e in rows for d in e.deliveries.all() if d.status != "done"),
            "error": error,
        },
        status=status if error else 200,
    )


@require_POST
@staff_member_required
def timeline_retry(request):
    """Run a pending or failed delivery again now (a failed one gets a fresh set of attempts)."""
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=False):
        back = "/staff/timeline/"
    try:
        delivery = EventDelivery.objects.select_related("event").get(pk=int(request.POST.get("delivery", "")))
    except (ValueError, EventDelivery.DoesNotExist):
        messages.error(request, "No such delivery.")
        return redirect(back)
    with transaction.atomic():
        failed, due = bus.retry_now([delivery.pk])
    if failed or due:
        what = f"{delivery.handler} of #{delivery.event_id} {delivery.event.event_type}"
        logger.info("%s retried the delivery %s (%s) from a timeline.", request.user, delivery.pk, what)
        messages.success(request, f"Delivery to {what} queued for retry.")
    else:
        messages.info(request, f"The delivery to {delivery.handler} was already handled; nothing to retry.")
    return redirect(back)
