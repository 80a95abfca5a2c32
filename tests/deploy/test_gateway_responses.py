"""The answers API Gateway gives by itself (throttling, integration timeout, oversized payloads, unknown
routes, any other 4xx/5xx) are in the contract's error shape with x-request-id, in both modes; and the
function's concurrency is reserved (and capped) by a parameter."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.contract import check_error_body

from .cfn import resolve, resources_of_type
from .conftest import MODES
from .test_template import deployed, function, only

# What $context variables look like once API Gateway substitutes them ($context.error.messageString is
# already a quoted JSON string).
CONTEXT = {
    "$context.error.messageString": json.dumps('Message with "quotes"'),
    "$context.error.responseType": "DEFAULT_4XX",
    "$context.requestId": "c0ffee00-1234-5678-9abc-def012345678",
    "$context.httpMethod": "GET",
    "$context.path": "/prod/",
}
EXPECTED = {
    "THROTTLED": ("429", "rate_limit_exceeded"),
    "INTEGRATION_TIMEOUT": ("504", "upstream_timeout"),
    "INTEGRATION_FAILURE": ("502", "upstream_error"),
    "REQUEST_TOO_LARGE": ("400", "request_too_large"),  # the contract: oversized bodies are a 400
    "MISSING_AUTHENTICATION_TOKEN": ("404", "unknown_url"),  # a path no route matches (e.g. the stage root)
    "RESOURCE_NOT_FOUND": ("404", "unknown_url"),
    "DEFAULT_4XX": (None, None),
    "DEFAULT_5XX": (None, None),
}


def gateway_responses(stack: dict[str, Any]) -> dict[str, Any]:
    api = only(resources_of_type(stack, "AWS::ApiGateway::RestApi"))
    return api["Properties"]["Body"]["x-amazon-apigateway-gateway-responses"]


def substituted(template: str) -> Any:
    for variable in sorted(CONTEXT, key=len, reverse=True):
        template = template.replace(variable, CONTEXT[variable])
    assert "$context" not in template, template
    return json.loads(template)


@pytest.mark.parametrize("mode", list(MODES))
def test_every_gateway_response_is_an_openai_error_with_the_request_id(transformed, mode):
    responses = gateway_responses(deployed(transformed, mode))
    assert set(EXPECTED) <= set(responses)
    for name, response in responses.items():
        assert response["responseParameters"]["gatewayresponse.header.x-request-id"] == "context.requestId"
        assert set(response["responseTemplates"]) == {"application/json"}
        error = check_error_body(substituted(response["responseTemplates"]["application/json"]))
        status, code = EXPECTED.get(name, (None, None))
        assert response.get("statusCode") == status, name
        if code is not None:
            assert error["code"] == code, name
            assert CONTEXT["$context.requestId"] in error["message"], name
        if name.startswith("DEFAULT_"):
            assert error["message"] == 'Message with "quotes"'  # API Gateway's own message, JSON-escaped
            assert error["type"] == ("server_error" if name == "DEFAULT_5XX" else "invalid_request_error")


def test_throttling_says_when_to_retry(transformed):
    throttled = gateway_responses(deployed(transformed, "streaming"))["THROTTLED"]
    assert throttled["responseParameters"]["gatewayresponse.header.retry-after"] == "'1'"
    error = substituted(throttled["responseTemplates"]["application/json"])["error"]
    assert error["type"] == "requests"


def test_templates_are_plain_json_without_vtl(template):
    """Gateway response templates get simple substitution only: no #if/#set, no $input."""
    body = template["Resources"]["ChatCompletionsApi"]["Properties"]["DefinitionBody"]
    for response in body["x-amazon-apigateway-gateway-responses"].values():
        text = response["responseTemplates"]["application/json"]
        assert not re.search(r"#(if|set|foreach)|\$input|\$util", text)


def test_concurrency_is_reserved_by_a_parameter(template, transformed):
    assert function(deployed(transformed, "streaming"))["ReservedConcurrentExecutions"] == {
        "Ref": "ReservedConcurrency"
    }
    assert template["Parameters"]["ReservedConcurrency"]["Default"] == 200
    unreserved = resolve(
        transformed["streaming"]["template"], {**MODES["streaming"], "ReservedConcurrency": "0"}
    )
    assert "ReservedConcurrentExecutions" not in function(unreserved)
