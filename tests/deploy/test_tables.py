"""The template's DynamoDB tables, built in moto, are the tables src/chatgate/stores/schema.py describes.

`chatgate dev` and the test suites create their tables from schema.py; the stack creates them from
template.yaml. Both definitions are built here with the same DynamoDB API (moto) and the descriptions are
compared, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chatgate.stores import schema

from .cfn import load_template

# Which table the function calls which: the template's own wiring (environment -> resource).
TABLES: dict[str, Callable[[str], dict[str, Any]]] = {
    "CHATGATE_TABLE_NAME": schema.data_table,
    "CHATGATE_RATE_LIMIT_TABLE_NAME": schema.rate_limit_table,
}

# CloudFormation properties that are CreateTable arguments under the same name.
_SAME_NAME = ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes")


def table_resource(template: dict[str, Any], env_name: str) -> tuple[str, dict[str, Any]]:
    env = template["Resources"]["ChatCompletionsFunction"]["Properties"]["Environment"]["Variables"]
    logical_id = env[env_name]["Ref"]
    resource = template["Resources"][logical_id]
    assert resource["Type"] == "AWS::DynamoDB::Table"
    return logical_id, resource["Properties"]


def create_table_args(name: str, props: dict[str, Any]) -> dict[str, Any]:
    """CreateTable arguments equivalent to an AWS::DynamoDB::Table resource's properties."""
    args: dict[str, Any] = {"TableName": name}
    args.update({key: props[key] for key in _SAME_NAME if key in props})
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        args["SSESpecification"] = {"Enabled": sse["SSEEnabled"], "SSEType": sse.get("SSEType", "KMS")}
    if "DeletionProtectionEnabled" in props:
        args["DeletionProtectionEnabled"] = props["DeletionProtectionEnabled"]
    return args


def shape(description: dict[str, Any]) -> dict[str, Any]:
    """The parts of DescribeTable that the table design decides."""
    return {
        "KeySchema": description["KeySchema"],
        "AttributeDefinitions": sorted(description["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
        "BillingMode": description["BillingModeSummary"]["BillingMode"],
        "GlobalSecondaryIndexes": sorted(
            (
                {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
                for i in description.get("GlobalSecondaryIndexes", [])
            ),
            key=lambda i: i["IndexName"],
        ),
    }


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("dynamodb", region_name="eu-central-1")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.mark.parametrize("env_name", list(TABLES))
def test_template_table_is_the_schema_table(dynamodb, template, env_name):
    logical_id, props = table_resource(template, env_name)

    dynamodb.create_table(**create_table_args(f"template-{logical_id}", props))
    dynamodb.create_table(**TABLES[env_name](f"schema-{logical_id}"))

    from_template = dynamodb.describe_table(TableName=f"template-{logical_id}")["Table"]
    from_schema = dynamodb.describe_table(TableName=f"schema-{logical_id}")["Table"]
    assert shape(from_template) == shape(from_schema)


@pytest.mark.parametrize("env_name", list(TABLES))
def test_template_table_settings_apply(dynamodb, template, env_name):
    """TTL on the schema's attribute, point-in-time recovery and KMS encryption, as DynamoDB reports them."""
    logical_id, props = table_resource(template, env_name)
    dynamodb.create_table(**create_table_args(logical_id, props))

    ttl = props["TimeToLiveSpecification"]
    dynamodb.update_time_to_live(
        TableName=logical_id,
        TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": ttl["Enabled"]},
    )
    pitr = props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
    dynamodb.update_continuous_backups(
        TableName=logical_id,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": pitr},
    )

    ttl_description = dynamodb.describe_time_to_live(TableName=logical_id)["TimeToLiveDescription"]
    assert ttl_description == {"AttributeName": schema.TTL_ATTRIBUTE, "TimeToLiveStatus": "ENABLED"}
    backups = dynamodb.describe_continuous_backups(TableName=logical_id)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    sse = dynamodb.describe_table(TableName=logical_id)["Table"]["SSEDescription"]
    assert (sse["Status"], sse["SSEType"]) == ("ENABLED", "KMS")


def test_template_control_table_is_the_schema_table(dynamodb, template):
    """The global table (created by the stack in ControlTableMode create) has the schema's design, and is
    the table the function is told to use."""
    props = template["Resources"]["ControlTable"]["Properties"]
    dynamodb.create_table(**create_table_args("template-control", props))
    dynamodb.create_table(**schema.control_table("schema-control"))
    from_template = dynamodb.describe_table(TableName="template-control")["Table"]
    from_schema = dynamodb.describe_table(TableName="schema-control")["Table"]
    assert shape(from_template) == shape(from_schema)
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}  # replication needs it
    assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    env = template["Resources"]["ChatCompletionsFunction"]["Properties"]["Environment"]["Variables"]
    assert env["CHATGATE_CONTROL_TABLE_NAME"] == {
        "Fn::If": ["CreateControlTable", {"Ref": "ControlTable"}, {"Ref": "ControlTableName"}]
    }
    [here, other] = props["Replicas"]
    assert here["Region"] == {"Ref": "AWS::Region"} and here["DeletionProtectionEnabled"] is True
    assert here["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert other["Fn::If"][0] == "ReplicateControlTable"
    assert other["Fn::If"][1]["Region"] == {"Ref": "ControlTableReplicaRegion"}


def test_every_template_table_is_one_the_app_uses(template):
    tables = {
        name for name, resource in template["Resources"].items() if resource["Type"] == "AWS::DynamoDB::Table"
    }
    assert tables == {table_resource(template, env_name)[0] for env_name in TABLES}


def test_data_table_keeps_the_index_the_key_listing_queries(template):
    _, props = table_resource(template, "CHATGATE_TABLE_NAME")
    assert [index["IndexName"] for index in props["GlobalSecondaryIndexes"]] == [schema.GSI1]
