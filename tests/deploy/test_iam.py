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


# The admin API's BYOK writes: this region's BYOK secrets only (never another region's, never the upstream).
BYOK_ADMIN_ACTIONS = {
    "secretsmanager:CreateSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:RestoreSecret",
}


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
            "dynamodb:Query",
            "dynamodb:UpdateItem",
        },
        repr({"Fn::Sub": CONTROL_TABLE}): CONTROL_ACTIONS,
        repr({"Fn::Sub": f"{CONTROL_TABLE}/index/gsi1"}): {"dynamodb:Query"},
        repr({"Fn::GetAtt": ["RateLimitTable", "Arn"]}): {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        repr({"Ref": "UpstreamSecret"}): {"secretsmanager:GetSecretValue"},
        repr(
            {
                "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                "${SecretPrefix}/byok/*/${RegionLabel}-??????"
            }
        ): {"secretsmanager:GetSecretValue", *BYOK_ADMIN_ACTIONS},
        repr(
            {
                "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                "${SecretPrefix}/byok/*/${RegionLabel}"
            }
        ): {"secretsmanager:GetSecretValue", *BYOK_ADMIN_ACTIONS},
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


# --- DynamoDB: only the calls the function makes, each on its own partitions ------------------------------

# boto3 method -> IAM action (the CLI's administration calls), and the store adapters' own client calls
# (`self._call("GetItem", ...)`, the request path).
_BOTO3_METHODS = {"get_item": "GetItem", "query": "Query", "update_item": "UpdateItem", "put_item": "PutItem"}
_OPERATIONS = {
    "GetItem",
    "Query",
    "UpdateItem",
    "PutItem",
    "DeleteItem",
    "BatchGetItem",
    "ConditionCheckItem",
    "TransactWriteItems",
}
# The control table (a global table, named by a parameter) and what the function does on it: the request
# path's reads and last-use writes, and the admin API's writes (each with its audit entry).
CONTROL_TABLE = "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${ControlTableName}"
CONTROL_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
}


def _function_statements(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    policies = template["Resources"]["ChatCompletionsFunctionRole"]["Properties"]["Policies"]
    return {s["Sid"]: s for policy in policies for s in policy["PolicyDocument"]["Statement"]}


def test_dynamodb_actions_are_exactly_what_the_request_path_calls(template):
    statements = _function_statements(template)
    granted = {
        action.removeprefix("dynamodb:")
        for statement in statements.values()
        for action in _as_list(statement["Action"])
        if action.startswith("dynamodb:")
    }
    assert granted == {action.removeprefix("dynamodb:") for action in CONTROL_ACTIONS}
    for statement in statements.values():
        for resource in _as_list(statement["Resource"]):
            if "index" in repr(resource):  # listings of the control plane only, and only Query
                assert "ControlTableName" in repr(resource) and statement["Action"] == "dynamodb:Query"
            elif "DataTable" in repr(resource) or "RateLimitTable" in repr(resource):
                regional = set(_as_list(statement["Action"]))
                assert regional <= {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"}


def test_every_dynamodb_call_of_the_stores_is_granted_or_admin_only():
    """Walk the store adapters: every DynamoDB call they make must be a granted action (TransactWriteItems
    is authorised as the actions of its items)."""
    import ast
    from pathlib import Path

    from .cfn import ROOT

    used: set[str] = set()
    for path in sorted(Path(ROOT / "src" / "chatgate" / "stores").glob("*_dynamodb.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for inner in ast.walk(tree):
            if isinstance(inner, ast.Attribute) and inner.attr in _BOTO3_METHODS:
                used.add(_BOTO3_METHODS[inner.attr])
            if isinstance(inner, ast.Constant) and inner.value in _OPERATIONS:
                used.add(inner.value)
    assert (
        "TransactWriteItems" in used
    )  # authorised as its items' actions: Put, Update, Delete, ConditionCheck
    used.discard("TransactWriteItems")
    assert used == {action.removeprefix("dynamodb:") for action in CONTROL_ACTIONS} - {"ConditionCheckItem"}


def test_each_dynamodb_statement_is_held_to_its_partitions(template):
    statements = _function_statements(template)

    def leading_keys(sid: str) -> list[str]:
        return statements[sid]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]

    assert leading_keys("ReadAndRecordResponseOwners") == ["RESP#*"]
    assert leading_keys("ReadAndWriteUsage") == ["WS#*"]
    assert leading_keys("CountRateLimits") == ["RL#*"]
    assert leading_keys("ControlPlane") == ["KEY#*", "WS#*", "ADMINKEY#*", "AUDIT"]
