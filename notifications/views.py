"""Customer pages of Notifications: e-mail preferences and webhook endpoints."""

from __future__ import annotations

import json
from functools import partial

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from notifications import commands
from notifications import webhooks as signing
from notifications.models import Notification, Recipient, WebhookDelivery, WebhookEndpoint
from sharedkernel.api.permissions import customer_id_of
from sharedkernel.errors import DomainError
from sharedkernel.events import EVENT_CLASSES
from sharedkernel.page_messages import say_outcome


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
    say_outcome(
        request, partial(commands.redeliver, delivery_id=delivery.pk), f"{delivery.event_type} is being sent again."
    )
    return redirect("notifications:webhooks")


def _own_endpoint(request, endpoint_id) -> WebhookEndpoint:
    return get_object_or_404(WebhookEndpoint, pk=endpoint_id, customer_id=_recipient(request).pk)


def _endpoint_switch(command, done: str):
    """A button that turns one of the customer's own endpoints on or off: it runs ``command`` on
    the endpoint and says ``done`` (``{url}``: the endpoint's), or why the command refused."""

    @login_required
    @require_POST
    def switch(request, endpoint_id):
        endpoint = _own_endpoint(request, endpoint_id)
        say_outcome(request, partial(command, endpoint_id=endpoint.pk), done.format(url=endpoint.url))
        return redirect("notifications:webhooks")

    return switch


enable_endpoint = _endpoint_switch(
    commands.enable_endpoint, "{url} is enabled again. Failed deliveries can be redelivered from its list."
)
disable_endpoint = _endpoint_switch(commands.disable_endpoint, "Nothing more is sent to {url} until you enable it.")


@login_required
@require_POST
def remove_endpoint(request, endpoint_id):
    endpoint = _own_endpoint(request, endpoint_id)
    commands.remove_endpoint(endpoint_id=endpoint.pk)
    messages.success(request, f"{endpoint.url} is removed.")
    return redirect("notifications:webhooks")


@csrf_exempt
@require_POST
def demo_webhook_receiver(request):
    """The demo's own webhook receiver (only with DEMO_WEBHOOK_RECEIVER): it checks the signature
    against the secret of the endpoint registered at this URL, as a real receiver would, and
    answers 200 (400 for a bad signature), so the demo shows deliveries that succeed."""
    if not getattr(settings, "DEMO_WEBHOOK_RECEIVER", False):
        raise Http404("The demo webhook receiver is off.")
    body = request.body.decode("utf-8", "replace")
    header = request.headers.get(signing.SIGNATURE_HEADER, "")
    endpoints = WebhookEndpoint.objects.filter(url__endswith=request.path)
    if not any(signing.verify(e.secret, body, header) for e in endpoints):
        return JsonResponse({"received": False, "error": "The signature does not match."}, status=400)
    event = json.loads(body).get("event_type", "") if body.startswith("{") else ""
    return JsonResponse({"received": True, "event_type": event})
