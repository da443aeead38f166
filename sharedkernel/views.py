"""Staff pages of the kernel: the living event-storming board (laid out by :mod:`sharedkernel.board`
from :mod:`sharedkernel.catalog`) and the retry of a handler's failed deliveries from it."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from sharedkernel import board as wall
from sharedkernel import bus
from sharedkernel.models import DeliveryStatus, EventDelivery

logger = logging.getLogger(__name__)

ARROW_COLOURS = (("records", "#8aa4c8"), ("reacts", "#d07a16"), ("issues", "#7a4fc2"))


@staff_member_required
def board(request):
    return render(request, "sharedkernel/board.html", {**wall.build(), "arrow_kinds": ARROW_COLOURS})


@require_POST
@staff_member_required
def board_retry(request):
    """Retry a handler's failed deliveries (of one event type, when named): a fresh set of attempts, now."""
    handler = request.POST.get("handler", "")
    if handler not in bus.HANDLERS:
        messages.error(request, f"No handler named {handler!r}.")
        return redirect("staff-board")
    failed = EventDelivery.objects.filter(handler=handler, status=DeliveryStatus.FAILED)
    if event_type := request.POST.get("event_type", ""):
        failed = failed.filter(event__event_type=event_type)
    with transaction.atomic():
        count = bus.retry_failed(list(failed.values_list("pk", flat=True)))
    what = f"{handler} ({event_type})" if event_type else handler
    logger.info("%s retried %d failed delivery(ies) of %s from the board.", request.user, count, what)
    messages.success(request, f"{count} failed delivery(ies) of {what} queued for retry.")
    return redirect("staff-board")
