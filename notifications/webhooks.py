"""Webhooks: who gets which event, the signature, the SSRF guard, and one attempt.

Receivers verify ``SubscriptionHub-Signature: t=<unix>,v1=<hex>`` by computing
HMAC-SHA256(secret, f"{t}.{raw body}") and comparing it (constant time) with v1,
and refuse a t more than 5 minutes from their clock (replays). See
docs/webhooks.md.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from datetime import datetime
from urllib.parse import urlparse

import requests
from django.conf import settings
from django.db import transaction

from notifications import events as ev
from notifications.models import (
    DISABLE_AFTER,
    WEBHOOK_BACKOFF,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.clock import clock_for
from sharedkernel.correlation import Cause, new_correlation_id
from sharedkernel.eventstore import append_batch

SIGNATURE_HEADER = "SubscriptionHub-Signature"
TOLERANCE_SECONDS = 300


class UnsafeUrl(ValueError):
    """The URL points somewhere webhooks must not go (this machine, a private network, cloud metadata)."""


def sign(secret: str, body: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: str, header: str, *, now: float | None = None) -> bool:
    """What a receiver does (and our tests' receiver does)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def check_url(url: str) -> None:
    """Refuse URLs that resolve to loopback, private, link-local, reserved or metadata addresses
    (unless WEBHOOK_ALLOW_PRIVATE_NETWORKS). Called on registration and before every send."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UnsafeUrl("Use an http(s) URL with a host name.")
    if getattr(settings, "WEBHOOK_ALLOW_PRIVATE_NETWORKS", False):
        return
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
    except socket.gaierror:
        raise UnsafeUrl(f"{parsed.hostname} does not resolve.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_loopback
            or address.is_private
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
            or str(address) == "169.254.169.254"
        ):
            raise UnsafeUrl(
                f"{parsed.hostname} resolves to {address}, a private or local address; webhooks only go "
                "to public addresses."
            )


def envelope_body(event) -> str:
    return json.dumps(event.to_json(), separators=(",", ":"), sort_keys=True)


def attempt(delivery_id, *, now: datetime | None = None) -> bool:
    """One POST of a delivery. Records the attempt, WebhookDispatched or WebhookFailed, and the next try."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .select_related("endpoint")
            .filter(pk=delivery_id, status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING])
            .first()
        )
        if delivery is None:
            return False
        endpoint = delivery.endpoint
        now = now or clock_for(delivery.test_clock_id).now()
        delivery.attempts += 1
        status_code, error = None, ""
        started = time.perf_counter()
        try:
            check_url(endpoint.url)
            timestamp = int(time.time())  # wall time: receivers check it against their clock, test clock or not
            response = requests.post(
                endpoint.url,
                data=delivery.body.encode(),
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(endpoint.secret, delivery.body, timestamp),
                    "SubscriptionHub-Event": delivery.event_type,
                    "SubscriptionHub-Delivery": str(delivery.pk),
                },
                timeout=(3, 10),
                allow_redirects=False,
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except UnsafeUrl as exc:
            error = str(exc)
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        latency = int((time.perf_counter() - started) * 1000)
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            at=now,
            status_code=status_code,
            latency_ms=latency,
            error=error[:500],
        )
        delivery.last_status_code, delivery.last_latency_ms, delivery.last_error = status_code, latency, error[:500]
        clock = str(delivery.test_clock_id) if delivery.test_clock_id else None
        common = dict(
            delivery_id=str(delivery.pk),
            endpoint_id=str(endpoint.pk),
            event_id=str(delivery.event_id),
            attempt=delivery.attempts,
        )
        if not error:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = DeliveryStatus.SUCCEEDED, now, None
            endpoint.failing_since = None
            recorded = ev.WebhookDispatched(**common, status_code=status_code, latency_ms=latency)
        else:
            index = delivery.attempts - 1
            delivery.next_attempt_at = now + WEBHOOK_BACKOFF[index] if index < len(WEBHOOK_BACKOFF) else None
            delivery.status = DeliveryStatus.RETRYING if delivery.next_attempt_at else DeliveryStatus.FAILED
            endpoint.failing_since = endpoint.failing_since or now
            recorded = ev.WebhookFailed(
                **common,
                status_code=status_code,
                latency_ms=latency,
                error=error[:500],
                next_attempt_at=delivery.next_attempt_at,
            )
        delivery.save()
        endpoint.save(update_fields=["failing_since"])
        append_batch(
            [
                (
                    Cause(new_correlation_id(), str(delivery.event_id), clock),
                    [RecordedEvent(recorded, now, "WebhookDelivery", str(delivery.pk), delivery.attempts, clock)],
                )
            ]
        )
        if error and endpoint.active and now - endpoint.failing_since >= DISABLE_AFTER:
            disable(endpoint, now=now, reason=f"Every delivery failed for {DISABLE_AFTER.days} days ({error}).")
        return not error


def disable(endpoint: WebhookEndpoint, *, now: datetime, reason: str) -> None:
    from notifications import commands

    endpoint.active, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason[:300]
    endpoint.save(update_fields=["active", "disabled_at", "disabled_reason"])
    commands.tell_owner_endpoint_disabled(endpoint)
