"""The DynamoDB table designs, shared by `chatgate dev`, the tests and (checked by a test) template.yaml.

Data table (single-table design, `CHATGATE_TABLE_NAME`):
  API key        pk=KEY#<key_id>        sk=KEY                  (+ gsi1pk=WS#<ws>, gsi1sk=KEY#<created>#<id>)
                 key_id, workspace_id, key_hash (SHA-256, never the key), name, created_at, expires_at?,
                 revoked_at?, last_used_at? (epoch seconds; written at most once per key per
                 CHATGATE_KEY_LAST_USED_INTERVAL_SECONDS, by a conditional UpdateItem)
  workspace      pk=WS#<workspace>      sk=WORKSPACE            (name, created_at)
  model limits   pk=WS#<workspace>      sk=LIMITS#<model>       (rpm, tpm)
  usage record   pk=WS#<workspace>      sk=USAGE#<day>#<model>  one per workspace, UTC day and model:
                 requests, prompt_tokens, completion_tokens, and counted_requests, counted_prompt_tokens,
                 counted_completion_tokens (the part chatgate counted because Azure sent no usage);
                 workspace_id, day, model, updated_at. Written with one atomic UpdateItem `ADD` per request
                 (stores/usage_dynamodb.py); a day range of a workspace is one Query on the sort key.

  response owner pk=RESP#<response id> sk=OWNER                 (workspace_id, region, created_at, ttl,
                 deleted_at?) for Responses API responses stored on Azure: who may continue, read or delete
                 them (ownership.py, stores/ownership_dynamodb.py); expires with Azure's 30-day retention.

Rate-limit table (`CHATGATE_RATE_LIMIT_TABLE_NAME`): one item per workspace, model and window,
  pk=RL#<workspace>#<model>#<window start>, expiring through the `ttl` attribute.

Not in DynamoDB: Azure credentials. The stack's upstream per region and each bring-your-own-keys workspace's
resource are JSON secrets in Secrets Manager (`Settings.upstream_secret_name`, `Settings.byok_secret_name`).
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
