"""Customer pages of Notifications: e-mail preferences and webhook endpoints."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from notifications import commands
from notifications.models import Notification, Recipient, WebhookDelivery, WebhookEndpoint
from sharedkernel.api.permissions import customer_id_of
from sharedkernel.errors import DomainError
from sharedkernel.events import EVENT_CLASSES


def _recipient(request) -> Recipient:
    recipient = Recipient.objects.filter(pk=customer_id_of(request.user)).first()
    if recipient is None:
        raise Http404
    return recipient


@login_required
def preferences(request):
    recipient = _recipient(request)
    if request.method == "POST":
        commands.set_preferences(customer_id=recipient.pk, essential_only=request.POST.get("essential_only") == "on")
        messages.success(request, "Your e-mail preferences are saved.")
        return redirect("notifications:preferences")
    log = Notification.objects.filter(customer_id=recipient.pk).order_by("-created_at")[:20]
    return render(request, "notifications/preferences.html", {"recipient": recipient, "log": log})


@login_required
def webhooks(request):
    recipient = _recipient(request)
    created_secret = None
    if request.method == "POST":
        events = request.POST.getlist("events") or ["*"]
        try:
            endpoint = commands.register_endpoint(
                url=request.POST.get("url", "").strip(), events=events, customer_id=recipient.pk
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            created_secret = endpoint.secret
            messages.success(request, "Endpoint added. Copy its signing secret now: it is shown only once.")
    endpoints = WebhookEndpoint.objects.filter(customer_id=recipient.pk).prefetch_related("deliveries")
    public = sorted(t for t, cls in EVENT_CLASSES.items() if cls.public)
    rows = [{"endpoint": e, "deliveries": list(e.deliveries.order_by("-created_at")[:10])} for e in endpoints]
    return render(
        request, "notifications/webhooks.html", {"rows": rows, "event_types": public, "created_secret": created_secret}
    )


@login_required
@require_POST
def redeliver(request, delivery_id):
    recipient = _recipient(request)
    delivery = get_object_or_404(WebhookDelivery, pk=delivery_id, endpoint__customer_id=recipient.pk)
    try:
        commands.redeliver(delivery_id=delivery.pk)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{delivery.event_type} is being sent again.")
    return redirect("notifications:webhooks")


def _own_endpoint(request, endpoint_id) -> WebhookEndpoint:
    return get_object_or_404(WebhookEndpoint, pk=endpoint_id, customer_id=_recipient(request).pk)


@login_required
@require_POST
def enable_endpoint(request, endpoint_id):
    endpoint = _own_endpoint(request, endpoint_id)
    try:
        commands.enable_endpoint(endpoint_id=endpoint.pk)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"{endpoint.url} is enabled again. Failed deliveries can be redelivered from its list."
        )
    return redirect("notifications:webhooks")


@login_required
@require_POST
def disable_endpoint(request, endpoint_id):
    endpoint = _own_endpoint(request, endpoint_id)
    try:
        commands.disable_endpoint(endpoint_id=endpoint.pk)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Nothing more is sent to {endpoint.url} until you enable it.")
    return redirect("notifications:webhooks")


@login_required
@require_POST
def remove_endpoint(request, endpoint_id):
    endpoint = _own_endpoint(request, endpoint_id)
    commands.remove_endpoint(endpoint_id=endpoint.pk)
    messages.success(request, f"{endpoint.url} is removed.")
    return redirect("notifications:webhooks")
