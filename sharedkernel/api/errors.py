"""Every API error has one shape: {"error": {"code", "message", "details"}}.

400 invalid input (details name the fields; also JSON nested too deeply to read),
401, 403, 404, 409 when a domain rule refuses a command (its code), 413 a body over
DATA_UPLOAD_MAX_MEMORY_SIZE, 429 throttled. Never a 500 for bad input
(docs/api-input.md lists the rules and bounds).
503 ``database_unavailable`` when the database connection failed mid-request: the
command's transaction rolled back as a whole, so the client may simply retry.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

from sharedkernel.errors import DomainError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(status_code: int, code: str, message: str, details: dict | None = None) -> Response:
    return Response(error_body(code, message, details), status=status_code)


def too_large_body() -> dict:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_body(
        "request_too_large",
        f"The request body is larger than the {limit:,} bytes the API accepts; send less per call.",
        {"body": f"at most {limit} bytes"},
    )


def too_deep_body() -> dict:
    return error_body(
        "malformed_request", "The JSON body is nested too deeply to be read.", {"body": "nested too deeply"}
    )


def _validation_message(detail) -> str:
    if isinstance(detail, dict):
        fields = ", ".join(sorted(str(key) for key in detail))
        return f"Some fields are invalid: {fields}." if fields else "The request is invalid."
    if isinstance(detail, list) and detail:
        return str(detail[0])
    return "The request is invalid."


_CODES = {
    exceptions.NotAuthenticated: ("not_authenticated", "Authentication credentials were not provided."),
    exceptions.AuthenticationFailed: ("authentication_failed", "The credentials are not valid."),
    exceptions.PermissionDenied: ("permission_denied", "This action is for staff only."),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.NotAcceptable: ("not_acceptable", None),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", None),
    exceptions.ParseError: ("malformed_request", None),
}


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return error_response(exc.status, exc.code, exc.message, exc.details)
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        return error_response(404, "not_found", "Not found.")
    if isinstance(exc, RequestDataTooBig):
        return Response(too_large_body(), status=413)
    if isinstance(exc, RecursionError):  # JSON nested past what the parser (or our code) can follow
        return Response(too_deep_body(), status=400)
    if isinstance(exc, DjangoPermissionDenied):
        return error_response(403, "permission_denied", "This action is for staff only.")
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return error_response(400, "validation_error", _validation_message(exc.detail), detail)
    if isinstance(exc, exceptions.Throttled):
        response = error_response(429, "throttled", "Too many requests; slow down.", {"retry_after_seconds": exc.wait})
        if exc.wait is not None:
            response["Retry-After"] = str(int(exc.wait) + 1)
        return response
    if isinstance(exc, exceptions.APIException):
        code, message = next(
            ((c, m) for cls, (c, m) in _CODES.items() if isinstance(exc, cls)), (exc.default_code, None)
        )
        response = error_response(exc.status_code, code, message or str(exc.detail))
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            response.status_code = status.HTTP_401_UNAUTHORIZED
            response["WWW-Authenticate"] = "Token"
        return response
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("Database connection failed during an API request: %s", exc)
        response = error_response(
            503, "database_unavailable", "The database did not answer; nothing was changed. Try again shortly."
        )
        response["Retry-After"] = "1"
        return response
    logger.exception("Unhandled error in API view", exc_info=exc)
    return error_response(500, "internal_error", "Something went wrong on our side; it has been logged.")


def json_not_found(request, exception=None):
    return JsonResponse(error_body("not_found", f"No API resource at {request.path}."), status=404)


def json_server_error(request):
    return JsonResponse(
        error_body("internal_error", "Something went wrong on our side; it has been logged."), status=500
    )
