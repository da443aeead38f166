"""The schema at /api/schema/ tells the truth: JSON bodies only, required bodies required, and
every operation's 4xx documented with the one error body."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.helpers import api_client, staff_user

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def schema():
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


def test_request_bodies_are_json_only_and_required_when_the_view_needs_one(schema):
    bodies = {name: op["requestBody"] for name, op in operations(schema) if "requestBody" in op}
    assert {name for name, body in bodies.items() if set(body["content"]) != {"application/json"}} == set()
    for name in ("POST /api/v1/plans/", "POST /api/v1/customers/", "POST /api/v1/subscriptions/"):
        assert bodies[name]["required"] is True, name
    assert bodies["PUT /api/v1/customers/{id}/payment-method/"]["required"] is True


def test_every_operation_documents_its_4xx_with_the_one_error_body(schema):
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    missing = {}
    for name, op in operations(schema):
        responses = op["responses"]
        expected = {"429"}
        if name != "POST /api/v1/notifications-bounces/":  # no credentials there: a bearer token
            expected.add("401")
        filters = [p for p in op.get("parameters", []) if p["in"] == "query" and p["name"] not in ("page", "page_size")]
        if "requestBody" in op or filters:  # a bad page is a 404, a bad page_size the default
            expected.add("400")
        if "{" in name:
            expected.add("404")
        if "requestBody" in op:
            expected |= {"400", "413", "415"}
        if name.startswith(("POST", "PUT", "DELETE")):
            expected.add("409")
        gaps = expected - set(responses)
        if gaps:
            missing[name] = sorted(gaps)
        for code, response in responses.items():
            if code.startswith("4"):
                assert response["content"]["application/json"]["schema"] == error, (name, code)
                assert response["description"], (name, code)
    assert missing == {}
    envelope = schema["components"]["schemas"]["Error"]
    assert set(envelope["required"]) == {"code", "message", "details"}


def test_staff_only_operations_document_403_and_others_do_not(schema):
    forbidden = {name for name, op in operations(schema) if "403" in op["responses"]}
    assert {
        "POST /api/v1/plans/",
        "POST /api/v1/customers/",
        "POST /api/v1/customers/{id}/credits/",
        "POST /api/v1/subscriptions/{id}/suspend/",
        "POST /api/v1/invoices/{id}/void/",
        "POST /api/v1/payments/{id}/refund/",
        "GET /api/v1/events/",
        "GET /api/v1/analytics/mrr/",
        "POST /api/v1/test-clocks/",
    } <= forbidden
    assert not forbidden & {"GET /api/v1/plans/", "GET /api/v1/subscriptions/", "POST /api/v1/subscriptions/"}


def test_every_post_documents_the_idempotency_key_header(schema):
    without = [
        name
        for name, op in operations(schema)
        if name.startswith("POST")
        and not any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in op.get("parameters", []))
    ]
    assert without == []


def test_lines_without_a_metric_are_documented_as_null(schema):
    line = schema["components"]["schemas"]["LineOut"]["properties"]
    assert line["metric"]["nullable"] is True and line["quantity"]["nullable"] is True


@pytest.mark.parametrize("content_type", ["multipart/form-data", "application/x-www-form-urlencoded"])
def test_form_bodies_are_refused_with_415_and_the_error_body(content_type):
    staff = api_client(staff_user())
    body = "code=pro&name=Pro&tier=basic&interval=month"
    if content_type == "multipart/form-data":
        response = staff.post("/api/v1/plans/", {"code": "pro", "name": "Pro"}, format="multipart")
    else:
        response = staff.post("/api/v1/plans/", body, content_type=content_type)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def _inline_money(node, path=""):
    """Paths of objects shaped like Money (exactly amount + currency) that are not the component."""
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict) and set(node["properties"]) == {"amount", "currency"}:
            yield path
        for key, value in node.items():
            yield from _inline_money(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _inline_money(value, f"{path}[{i}]")


def test_money_is_one_component_everywhere(schema):
    others = {k: v for k, v in schema["components"]["schemas"].items() if k not in ("Money", "UnitRate")}
    assert list(_inline_money({"paths": schema["paths"], "components": others})) == []  # no inline copies left
    money = schema["components"]["schemas"]["Money"]
    assert money["required"] == ["amount", "currency"] and money["properties"]["amount"]["type"] == "string"
    assert schema["components"]["schemas"]["LineOut"]["properties"]["amount"] == {"$ref": "#/components/schemas/Money"}


def test_unit_rates_are_their_own_component_with_up_to_6_decimals(schema):
    rate = schema["components"]["schemas"]["UnitRate"]
    assert rate["properties"]["amount"]["pattern"] == r"^[0-9]{1,12}(\.[0-9]{1,6})?$"
    ref = {"$ref": "#/components/schemas/UnitRate"}
    assert schema["components"]["schemas"]["PlanOut"]["properties"]["overage_rates"]["additionalProperties"] == ref
    assert schema["components"]["schemas"]["MetricUsage"]["properties"]["rate"]["allOf"] == [ref]


def test_the_proration_preview_documents_the_change_plan_refusal_as_409(schema):
    # the preview answers the change-plan command's 409 (same_plan, downgrade_during_trial, ...)
    op = schema["paths"]["/api/v1/subscriptions/{id}/proration-preview/"]["get"]
    refused = op["responses"]["409"]
    assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    assert "downgrade_during_trial" in refused["description"]
    assert {"needs_approval", "message"} <= set(schema["components"]["schemas"]["ProrationPreview"]["properties"])
