"""The DynamoDB table designs, shared by `chatgate dev`, the tests and (checked by a test) template.yaml.

Data table (single-table design, `CHATGATE_TABLE_NAME`):
  API key        pk=KEY#<key_id>        sk=KEY                  (+ gsi1pk=WS#<ws>, gsi1sk=KEY#<created>#<id>)
  workspace      pk=WS#<workspace>      sk=WORKSPACE            (name, created_at)
  model limits   pk=WS#<workspace>      sk=LIMITS#<model>       (rpm, tpm)
  usage record   pk=WS#<workspace>      sk=USAGE#<day>#<model>  (requests, prompt_tokens, completion_tokens)

Rate-limit table (`CHATGATE_RATE_LIMIT_TABLE_NAME`): one item per workspace, model and window,
  pk=RL#<workspace>#<model>#<window start>, expiring through the `ttl` attribute.
"""

from __future__ import annotations

from typing import Any

TTL_ATTRIBUTE = "ttl"
GSI1 = "gsi1"


def data_table(name: str) -> dict[str, Any]:
    """CreateTable arguments for the data table."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": GSI1,
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


def rate_limit_table(name: str) -> dict[str, Any]:
    """CreateTable arguments for the rate-limit counters table."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    }
