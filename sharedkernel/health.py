"""/healthz: is the database answering, the broker and the cache reachable, and beat alive?

The cache failing does not stop the API (sharedkernel/cache.py answers from a local store), but it is
reported here as failing so monitoring sees the outage; the message says what answers instead.

A failing probe is logged once per probe as a WARNING that names the failing checks, not as
Django's "ERROR Service Unavailable: /healthz" (``sharedkernel.logfilters.QuietProbe`` drops that record): `make run`
polls this page while beat starts, and a newcomer should not read dozens of errors."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone

from sharedkernel.models import Heartbeat

logger = logging.getLogger(__name__)


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _broker() -> str:
    from celery import current_app

    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


def _cache() -> str:
    from django.core.cache import cache

    health = getattr(cache, "health", None)
    if health is not None:
        return health()
    cache.set("sharedkernel:healthz", "ok", 10)
    if cache.get("sharedkernel:healthz") != "ok":
        raise RuntimeError("the cache did not keep a value")
    return "ok"


def _beat() -> str:
    beat_at = Heartbeat.objects.filter(name="beat").values_list("beat_at", flat=True).first()
    if beat_at is None:
        raise RuntimeError("beat has never reported")
    age = timezone.now() - beat_at
    if age > settings.BEAT_HEARTBEAT_MAX_AGE:
        raise RuntimeError(f"last heartbeat {int(age.total_seconds())}s ago")
    return "ok"


def healthz(request):
    checks = {}
    healthy = True
    for name, check in (("database", _database), ("broker", _broker), ("cache", _cache), ("beat", _beat)):
        try:
            checks[name] = check()
        except Exception as exc:  # report, don't crash: this page is for when things are broken
            checks[name] = f"failing: {exc}"
            healthy = False
    if not healthy:
        failing = ", ".join(f"{name} {state}" for name, state in checks.items() if state != "ok")
        logger.warning("healthz: %s", failing)
    return JsonResponse({"status": "ok" if healthy else "failing", "checks": checks}, status=200 if healthy else 503)
