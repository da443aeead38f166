"""The OpenAPI schema says what the API really answers, errors included.

Every operation documents, with the one error body of :mod:`sharedkernel.api.errors`
(``{"error": {"code", "message", "details"}}``), the 4xx it can answer:

* 400 when it takes a body, query parameters or an ``Idempotency-Key`` (details name the fields);
* 401 when a credential is checked (a wrong token is refused even where anonymous reads are allowed);
* 403 when it is for staff only;
* 404 when it addresses an object by id or pages through a list;
* 409 when it is a command a domain rule may refuse (every write), or when a view says so;
* 413 and 415 when it takes a body (too large; not JSON);
* 429 everywhere (throttling).

Bodies are JSON only (``DEFAULT_PARSER_CLASSES``), so the schema offers nothing else, and
every POST documents the ``Idempotency-Key`` header of API.md.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from sharedkernel.api.permissions import IsStaff, ReadOnlyOrStaff

ERROR_BODY = inline_serializer(
    "ErrorResponse",
    {
        "error": inline_serializer(
            "Error",
            {
                "code": serializers.CharField(help_text="Stable snake_case code, e.g. validation_error, same_plan."),
                "message": serializers.CharField(help_text="A sentence a person can read."),
                "details": serializers.DictField(
                    help_text="For validation errors, the invalid fields and what is wrong with each."
                ),
            },
        )
    },
)


def error_response(description: str) -> OpenApiResponse:
    """For a view to document an error its operation answers that the defaults do not cover."""
    return OpenApiResponse(ERROR_BODY, description)


_DESCRIPTIONS = {
    "400": "Malformed or invalid input; `details` names the fields.",
    "401": "No credentials, or credentials that are not valid.",
    "403": "This action is for staff only.",
    "404": "No such object (another customer's objects are not found either), or no such page.",
    "409": "A domain rule refused the command (`code` says which, e.g. `invalid_transition`, "
    "`concurrent_update`), or the Idempotency-Key was used for another request.",
    "413": "The request body is too large.",
    "415": "The request body is not JSON.",
    "429": "Too many requests; retry after the `Retry-After` header's seconds.",
}

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="A repeat with the same key and body returns the first response and has no second effect; "
    "the same key with another body answers 409 idempotency_key_reused. At most 255 characters.",
)

_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class ApiSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the API's error responses and idempotency header."""

    def _get_filter_parameters(self):
        # A filter given with no value is refused (sharedkernel.api.filters): the schema says so.
        parameters = super()._get_filter_parameters()
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if schema.get("type") == "string":
                schema.setdefault("minLength", 1)
        return parameters

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "POST":
            parameters.append(IDEMPOTENCY_KEY)
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(ERROR_BODY, code, direction=direction)
                responses[code]["description"] = _DESCRIPTIONS[code]
        return dict(sorted(responses.items()))

    def _takes_body(self) -> bool:
        return self.method in _WRITES - {"DELETE"} and self.get_request_serializer() is not None

    def _error_codes(self) -> list[str]:
        codes = ["429"]
        has_query = (
            bool(getattr(self.view, "filterset_class", None))
            or bool(self._get_pagination_parameters())  # page_size must be a whole number ≥ 1
            or any(
                isinstance(p, OpenApiParameter) and p.location == OpenApiParameter.QUERY
                for p in self.get_override_parameters()
            )
        )
        if self._takes_body() or has_query or self.method == "POST":
            codes.append("400")
        if self._takes_body():
            codes += ["413", "415"]
        if self.view.get_authenticators():
            codes.append("401")
        if self._staff_only():
            codes.append("403")
        if "{" in self.path or self._is_list_view():
            codes.append("404")
        if self.method in _WRITES:
            codes.append("409")
        return codes

    def _staff_only(self) -> bool:
        for permission in self.view.get_permissions():
            if isinstance(permission, IsStaff):
                return True
            if isinstance(permission, ReadOnlyOrStaff) and self.method not in ("GET", "HEAD", "OPTIONS"):
                return True
        return False


def money_component(result, generator, request, public):
    """Postprocessing hook: every Money in the schema is one ``Money`` component (and every unit
    rate one ``UnitRate``), so a generated client has one type instead of one per field."""
    from sharedkernel.api.fields import MONEY_SCHEMA, RATE_SCHEMA

    components = {"Money": MONEY_SCHEMA, "UnitRate": RATE_SCHEMA}

    def replace(node):
        if isinstance(node, dict):
            for name, component in components.items():
                if node.get("type") == "object" and node.get("properties") == component["properties"]:
                    ref = {"$ref": f"#/components/schemas/{name}"}
                    extra = {k: v for k, v in node.items() if k not in component}
                    return {"allOf": [ref], **extra} if extra else ref
            return {key: replace(value) for key, value in node.items()}
        if isinstance(node, list):
            return [replace(item) for item in node]
        return node

    result = replace(result)
    result.setdefault("components", {}).setdefault("schemas", {}).update(components)
    result["components"]["schemas"] = dict(sorted(result["components"]["schemas"].items()))
    return result
