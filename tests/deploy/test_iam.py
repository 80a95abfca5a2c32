"""IAM in template.yaml, as the SAM translator transforms it: every statement names this stack's own
resources and actions, the function reaches exactly its tables, secrets and log group, and bring-your-own-keys
secrets of the other region are out of reach."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chatgate.settings import Settings

from .cfn import resources_of_type, sub_text, substitute
from .conftest import MODES
from .test_template import deployed, function


def _statements(stack: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, role in resources_of_type(stack, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found += [(name, statement) for statement in policy["PolicyDocument"]["Statement"]]
    for name, policy in resources_of_type(stack, "AWS::IAM::Policy").items():
        found += [(name, statement) for statement in policy["Properties"]["PolicyDocument"]["Statement"]]
    return found


# Actions IAM authorises on Resource "*" only (no resource-level permissions): active tracing needs them.
RESOURCELESS_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("mode", list(MODES))
def test_iam_statements_name_resources_and_actions(transformed, mode):
    stack = deployed(transformed, mode)
    statements = _statements(stack)

    assert statements
    for role, statement in statements:
        assert statement["Effect"] == "Allow"
        resourceless = set(_as_list(statement["Action"])) <= RESOURCELESS_ACTIONS
        for resource in _as_list(statement["Resource"]):
            text = sub_text(resource) if isinstance(resource, dict) and "Fn::Sub" in resource else resource
            assert text != "*" or resourceless, (role, statement)
        for action in _as_list(statement["Action"]):
            assert "*" not in action, (role, statement)
        assert "NotResource" not in statement
        assert "NotAction" not in statement
    for role in resources_of_type(stack, "AWS::IAM::Role").values():
        assert not role["Properties"].get("ManagedPolicyArns"), "managed policies carry Resource *"


def test_function_role_reaches_exactly_the_stacks_tables_secret_and_log_group(transformed):
    stack = deployed(transformed, "streaming")
    role = function(stack)["Role"]
    assert role == {"Fn::GetAtt": ["ChatCompletionsFunctionRole", "Arn"]}

    granted: dict[str, set[str]] = {}
    for role_name, statement in _statements(stack):
        if role_name != "ChatCompletionsFunctionRole":
            continue
        for resource in _as_list(statement["Resource"]):
            key = resource if isinstance(resource, str) else repr(resource)
            granted.setdefault(key, set()).update(_as_list(statement["Action"]))

    assert granted == {
        "*": RESOURCELESS_ACTIONS,  # X-Ray's write actions, and nothing else on "*"
        repr({"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}): {"logs:CreateLogStream", "logs:PutLogEvents"},
        repr({"Fn::GetAtt": ["DataTable", "Arn"]}): {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
        },
        repr({"Fn::Sub": "${DataTable.Arn}/index/gsi1"}): {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
        },
        repr({"Fn::GetAtt": ["RateLimitTable", "Arn"]}): {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:ConditionCheckItem",
        },
        repr({"Ref": "UpstreamSecret"}): {"secretsmanager:GetSecretValue"},
        repr(
            {
                "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                "${SecretPrefix}/byok/*/${RegionLabel}-??????"
            }
        ): {"secretsmanager:GetSecretValue"},
        repr(
            {
                "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                "${SecretPrefix}/byok/*/${RegionLabel}"
            }
        ): {"secretsmanager:GetSecretValue"},
    }


def _byok_patterns(template: dict[str, Any]) -> list[re.Pattern[str]]:
    """The statement's BYOK resources as regexes, for the eu stack of account 123456789012."""
    statement = next(
        s
        for policy in template["Resources"]["ChatCompletionsFunctionRole"]["Properties"]["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
        if s.get("Sid") == "ReadUpstreamAndOwnRegionByokSecrets"
    )
    patterns = []
    for resource in statement["Resource"][1:]:
        pattern = substitute(
            sub_text(resource),
            {"AWS::Partition": "aws", "AWS::Region": "eu-central-1", "AWS::AccountId": "123456789012"}
            | {"SecretPrefix": "chatgate", "RegionLabel": "eu"},
        )
        patterns.append(re.compile("^" + re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".") + "$"))
    return patterns


ARN = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:{}"


def test_byok_secrets_of_the_other_region_are_out_of_reach(template):
    """The EU function can read eu BYOK secrets and not us ones (data residency)."""
    settings = Settings(secret_prefix="chatgate")
    secret_arn = ARN + "-AbCdEf"
    readable = [p for p in _byok_patterns(template) if p.match(secret_arn.format("chatgate/byok/acme/eu"))]

    assert len(readable) == 1  # existing secrets: only through the suffixed pattern
    assert readable[0].match(secret_arn.format(settings.byok_secret_name("acme", "eu")))
    for pattern in _byok_patterns(template):
        assert not pattern.match(secret_arn.format(settings.byok_secret_name("acme", "us")))
        assert not pattern.match(secret_arn.format(settings.upstream_secret_name("us")))
        assert not pattern.match(ARN.format(settings.byok_secret_name("acme", "us")))


def test_a_byok_lookup_of_a_workspace_without_one_is_allowed_to_find_nothing(template):
    """A name with no secret is authorised as its suffix-less ARN: allowed, so Secrets Manager answers
    ResourceNotFoundException (cached as "no BYOK") and not AccessDeniedException (a 503 for everyone)."""
    settings = Settings(secret_prefix="chatgate")
    unsuffixed = ARN.format(settings.byok_secret_name("globex", "eu"))
    assert any(pattern.match(unsuffixed) for pattern in _byok_patterns(template))
