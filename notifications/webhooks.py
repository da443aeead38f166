"""Webhooks: who gets which event, the signature, the SSRF guard, and one attempt.

An attempt never POSTs inside a database transaction: it records the attempt and commits, POSTs, and
records the answer in a new transaction (:func:`attempt`); a crash in between is retried.

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
import logging
import socket
import time
from datetime import datetime, timedelta
from urllib.parse import urlparse

import requests
from django.conf import settings
from django.db import transaction
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from notifications import events as ev
from notifications.models import WebhookAttempt, WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from notifications.models.webhook import DISABLE_AFTER, PICKUP_AFTER, WEBHOOK_BACKOFF
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.clock import clock_for
from sharedkernel.correlation import Cause, new_correlation_id
from sharedkernel.declarations import external_system
from sharedkernel.eventstore import append_batch
from sharedkernel.outside import ensure_outside_transaction

logger = logging.getLogger(__name__)

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


def _private_networks_allowed() -> bool:
    return bool(getattr(settings, "WEBHOOK_ALLOW_PRIVATE_NETWORKS", False))


def _origin(scheme: str, host: str, port: int | None) -> str:
    port = port or (443 if scheme == "https" else 80)
    return f"{scheme}://{host.lower()}:{port}"


def _allowed_origins() -> set[str]:
    """WEBHOOK_ALLOWED_ORIGINS, normalised to scheme://host:port (the demo's own receiver)."""
    allowed = set()
    for origin in getattr(settings, "WEBHOOK_ALLOWED_ORIGINS", []) or []:
        parsed = urlparse(origin)
        try:
            if parsed.scheme in ("http", "https") and parsed.hostname:
                allowed.add(_origin(parsed.scheme, parsed.hostname, parsed.port))
        except ValueError:  # a misconfigured entry allows nothing
            continue
    return allowed


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Anything but a public unicast address: loopback, private, link-local (cloud metadata at
    169.254.169.254 and fd00:ec2::254), carrier-grade NAT, reserved, unspecified, multicast."""
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return not address.is_global or address.is_multicast


def check_url(url: str) -> None:
    """Refuse URLs that resolve to loopback, private, link-local, reserved or metadata addresses
    (unless WEBHOOK_ALLOW_PRIVATE_NETWORKS). Called on registration and before every send; the
    address actually connected to is checked again (:class:`_GuardedConnection`), so a name that
    resolves differently a moment later (DNS rebinding) gains nothing."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UnsafeUrl("Use an http(s) URL with a host name.")
    try:
        port = parsed.port
    except ValueError:
        raise UnsafeUrl("The URL's port is not a port number.") from None
    if _private_networks_allowed() or _origin(parsed.scheme, parsed.hostname, port) in _allowed_origins():
        return
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
    except (socket.gaierror, ValueError):
        raise UnsafeUrl(f"{parsed.hostname} does not resolve.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if _forbidden(address):
            raise UnsafeUrl(
                f"{parsed.hostname} resolves to {address}, a private or local address; webhooks only go "
                "to public addresses."
            )


class _GuardedConnection:
    """Checks the peer of every new socket before a byte is sent on it."""

    def _new_conn(self):
        sock = super()._new_conn()
        scheme = "https" if isinstance(self, HTTPSConnection) else "http"
        if not _private_networks_allowed() and _origin(scheme, self.host, self.port) not in _allowed_origins():
            peer = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
            if _forbidden(peer):
                sock.close()
                raise UnsafeUrl(
                    f"{self.host} resolved to {peer} when connecting, a private or local address; webhooks "
                    "only go to public addresses."
                )
        return sock


class _GuardedHTTPConnection(_GuardedConnection, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


@external_system(
    "Webhook receivers", context="notifications", description="Customers' endpoints; every public event, signed."
)
def post(url: str, body: bytes, headers: dict) -> int:
    """POST ``body`` to a webhook URL; returns the status code.

    No redirects (a 3xx is an answer, not a new destination), connect and read timeouts,
    no proxies or .netrc from the environment (they would bypass the address check), and
    the response body is never read. Refused inside an open database transaction.
    """
    ensure_outside_transaction("webhook.post")
    with requests.Session() as session:
        session.trust_env = False
        adapter = _GuardedAdapter(max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        response = session.post(
            url,
            data=body,
            headers=headers,
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT),
            allow_redirects=False,
            stream=True,
        )
        response.close()
        return response.status_code


def envelope_body(event) -> str:
    return json.dumps(event.to_json(), separators=(",", ":"), sort_keys=True)


def attempt_soon(delivery_ids: list) -> None:
    """First attempts of new deliveries, called after their transaction commits.

    With workers, each is its own task, so a slow or black-holed receiver (up to the connect plus
    read timeout per delivery) holds up neither the event handler that fanned out nor the other
    receivers. Without workers (EVENT_DISPATCH inline/manual) they run here. If the broker is
    down, the retry job picks them up PICKUP_AFTER later.
    """
    if settings.EVENT_DISPATCH != "celery":
        for pk in delivery_ids:
            attempt(pk, after_attempts=0)
        return
    from notifications.tasks import attempt_webhook

    try:
        for pk in delivery_ids:
            attempt_webhook.apply_async(args=(str(pk), 0))
    except Exception as exc:  # broker down: notifications.retry_webhooks is the other path
        logger.warning(
            "Could not queue %d webhook attempts (%s); the retry job will send them.", len(delivery_ids), exc
        )


INTERRUPTED = "Interrupted: the process stopped before the answer was recorded; the delivery was tried again."


def in_flight() -> timedelta:
    """How long an attempt may take (connect plus read timeout, with room to spare): a delivery whose
    attempt is on record but not its answer is tried again by the retry job this long after it began."""
    timeouts = settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_READ_TIMEOUT
    return max(PICKUP_AFTER, timedelta(seconds=2 * timeouts))


def attempt(
    delivery_id, *, now: datetime | None = None, due_only: bool = False, after_attempts: int | None = None
) -> bool:
    """One POST of a delivery, in three steps: record the attempt and commit, POST with no transaction
    open, record the answer (the attempt's row, WebhookDispatched or WebhookFailed, the next try) in a new
    transaction. A crash between the first and the last leaves the attempt on record, due again
    :func:`in_flight` after it began: the retry job finds it, notes it as interrupted and sends it again
    (at least once; receivers drop repeats by the body's ``event_id``, docs/webhooks.md).

    Each caller names what it expects, so a delivery is attempted once per intent even when two
    processes reach it: ``due_only`` (the retry job) skips one whose next attempt is not due at
    ``now``; ``after_attempts`` (right after a fan-out or a redelivery commits) skips one attempted
    by anyone since. One whose attempt is in flight elsewhere is on record as attempted and not due.
    """
    begun = _begin(delivery_id, now=now, due_only=due_only, after_attempts=after_attempts)
    if begun is None:
        return False
    delivery, now = begun
    endpoint = delivery.endpoint
    status_code, error = None, ""
    started = time.perf_counter()
    try:
        check_url(endpoint.url)
        timestamp = int(time.time())  # wall time: receivers check it against their clock, test clock or not
        status_code = post(
            endpoint.url,
            delivery.body.encode(),
            {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(endpoint.secret, delivery.body, timestamp),
                "SubscriptionHub-Event": delivery.event_type,
                "SubscriptionHub-Delivery": str(delivery.pk),
            },
        )
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except UnsafeUrl as exc:
        error = str(exc)
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    latency = int((time.perf_counter() - started) * 1000)
    return _finish(delivery.pk, delivery.attempts, now=now, status_code=status_code, latency=latency, error=error)


def _begin(delivery_id, *, now, due_only: bool, after_attempts: int | None) -> tuple[WebhookDelivery, datetime] | None:
    """Record the attempt (one more, and the pick-up should its answer never be recorded), and commit."""
    with transaction.atomic():
        # Lock the delivery only: with the join, FOR UPDATE would lock the endpoint row too, and
        # skip_locked would then skip every other delivery to that endpoint being attempted or created.
        query = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id, status__in=[WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.RETRYING])
        )
        if due_only:
            query = query.filter(next_attempt_at__lte=now)
        if after_attempts is not None:
            query = query.filter(attempts=after_attempts)
        delivery = query.first()
        if delivery is None:
            return None
        now = now or clock_for(delivery.test_clock_id).now()
        if (
            delivery.attempts
            and not WebhookAttempt.objects.filter(delivery=delivery, number=delivery.attempts).exists()
        ):
            # the previous attempt began and its process died before the answer: say so in the log
            began = (delivery.next_attempt_at or now) - in_flight()
            WebhookAttempt.objects.create(
                delivery=delivery, number=delivery.attempts, at=min(began, now), latency_ms=0, error=INTERRUPTED
            )
        delivery.attempts += 1
        delivery.next_attempt_at = now + in_flight()
        delivery.save(update_fields=["attempts", "next_attempt_at"])
    return delivery, now


def _finish(delivery_id, number: int, *, now: datetime, status_code: int | None, latency: int, error: str) -> bool:
    """Record the answer of attempt ``number``: its row, the delivery's state and event, the endpoint's health."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:  # the endpoint was removed meanwhile, with its deliveries
            return not error
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            at=now,
            status_code=status_code,
            latency_ms=latency,
            error=error[:500],
        )
        if delivery.attempts != number or delivery.status not in (
            WebhookDeliveryStatus.PENDING,
            WebhookDeliveryStatus.RETRYING,
        ):
            return not error  # another process took over once this answer was overdue: its attempt decides
        endpoint = delivery.endpoint
        delivery.last_status_code, delivery.last_latency_ms, delivery.last_error = status_code, latency, error[:500]
        clock = str(delivery.test_clock_id) if delivery.test_clock_id else None
        common = dict(
            delivery_id=str(delivery.pk),
            endpoint_id=str(endpoint.pk),
            event_id=str(delivery.event_id),
            attempt=delivery.attempts,
        )
        if not error:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
                WebhookDeliveryStatus.SUCCEEDED,
                now,
                None,
            )
            endpoint.failing_since = None
            recorded = ev.WebhookDispatched(**common, status_code=status_code, latency_ms=latency)
        else:
            index = delivery.attempts - 1
            delivery.next_attempt_at = now + WEBHOOK_BACKOFF[index] if index < len(WEBHOOK_BACKOFF) else None
            delivery.status = (
                WebhookDeliveryStatus.RETRYING if delivery.next_attempt_at else WebhookDeliveryStatus.FAILED
            )
            endpoint.failing_since = endpoint.failing_since or now
            recorded = ev.WebhookFailed(
                **common,
                status_code=status_code,
                latency_ms=latency,
                error=error[:500],
                next_attempt_at=delivery.next_attempt_at,
            )
        delivery.save(
            update_fields=[
                "status",
                "delivered_at",
                "next_attempt_at",
                "last_status_code",
                "last_latency_ms",
                "last_error",
            ]
        )
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
