"""Idempotency-Key on every API POST.

The first request with a key stores its successful response; a repeat with the
same key and the same body gets that stored response back (header
``Idempotent-Replayed: true``) and has no second effect. The same key with a
different body answers 409 ``idempotency_key_reused``; a repeat while the first
is still running answers 409 ``idempotency_key_in_use``. Keys are scoped to the
caller's credentials and kept for IDEMPOTENCY_KEY_TTL. Failed requests (4xx,
5xx) are not stored, so they can be retried with the same key.
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from sharedkernel.api.errors import error_body, too_large_body
from sharedkernel.models import IdempotencyRecord


def _scope(request) -> str:
    user = getattr(request, "user", None)
    session_user = str(user.pk) if user is not None and user.is_authenticated else ""
    credentials = request.META.get("HTTP_AUTHORIZATION", "") + "|" + session_user
    return hashlib.sha256(credentials.encode()).hexdigest()


def _conflict(code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=409)


class IdempotencyKeyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key or not request.path.startswith("/api/"):
            return self.get_response(request)
        if len(key) > 255:
            return JsonResponse(
                error_body(
                    "validation_error", "Idempotency-Key is at most 255 characters.", {"Idempotency-Key": "too long"}
                ),
                status=400,
            )
        try:
            body = request.body
        except RequestDataTooBig:
            return JsonResponse(too_large_body(), status=413)
        scope = _scope(request)
        request_hash = hashlib.sha256(request.path.encode() + b"\n" + canonical_json(body)).hexdigest()
        record = self._begin(scope, key, request_hash, request)
        if isinstance(record, HttpResponse):
            return record
        try:
            response = self.get_response(request)
        except Exception:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            raise
        if 200 <= response.status_code < 300 and not getattr(response, "streaming", False):
            if hasattr(response, "render") and not getattr(response, "is_rendered", True):
                response.render()
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                state=IdempotencyRecord.State.COMPLETE,
                status_code=response.status_code,
                response_body=bytes(response.content),
                content_type=response.get("Content-Type", "application/json"),
            )
        else:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return response

    def _begin(self, scope: str, key: str, request_hash: str, request):
        expired_before = timezone.now() - settings.IDEMPOTENCY_KEY_TTL
        IdempotencyRecord.objects.filter(scope=scope, key=key, created_at__lt=expired_before).delete()
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(
                    scope=scope, key=key, request_hash=request_hash, method=request.method, path=request.path
                )
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if existing is None:  # the first request failed and released the key meanwhile
            return self._begin(scope, key, request_hash, request)
        if existing.request_hash != request_hash:
            return _conflict(
                "idempotency_key_reused",
                "This Idempotency-Key was already used with a different request; use a new key.",
            )
        if existing.state != IdempotencyRecord.State.COMPLETE:
            return _conflict(
                "idempotency_key_in_use", "A request with this Idempotency-Key is still being processed; retry shortly."
            )
        response = HttpResponse(
            bytes(existing.response_body), status=existing.status_code, content_type=existing.content_type
        )
        response["Idempotent-Replayed"] = "true"
        return response


def canonical_json(body: bytes) -> bytes:
    """Bodies that differ only in whitespace or key order are the same request."""
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):  # not JSON, or too deep to be: the view answers 400
        return body
