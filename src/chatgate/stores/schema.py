"""The DynamoDB table designs, shared by `chatgate dev`, the tests and (checked by a test) template.yaml.

Control table (`CHATGATE_CONTROL_TABLE_NAME`): what a workspace *is*, one DynamoDB global table replicated to
every region's stack (no prompt, answer or Azure key: hashes, names, limits and who changed them).
  API key        pk=KEY#<key_id>        sk=KEY                  (+ gsi1pk=WS#<ws>, gsi1sk=KEY#<created>#<id>)
                 key_id, workspace_id, key_hash (SHA-256, never the key), name, created_at, expires_at?,
                 revoked_at?, last_used_at? (epoch seconds; written at most once per key per
                 CHATGATE_KEY_LAST_USED_INTERVAL_SECONDS, by a conditional UpdateItem)
  workspace      pk=WS#<workspace>      sk=WORKSPACE            (+ gsi1pk=WORKSPACES, gsi1sk=<workspace>)
                 workspace_id, name, created_at, archived_at?
  model limits   pk=WS#<workspace>      sk=LIMITS#<model>       (rpm, tpm)
  admin key      pk=ADMINKEY#<key_id>   sk=ADMINKEY             (+ gsi1pk=ADMINKEYS, gsi1sk=<created>#<id>)
                 key_id, key_hash, name, created_at, project_id? (a workspace admin key's workspace),
                 last_used_at?
  audit entry    pk=AUDIT               sk=<effective_at>#<id>  (+ gsi1pk=AUDIT#<ws>, gsi1sk=the same sk)
                 id, type, effective_at, project_id?, project_name?, actor (JSON), request_id, details
                 (JSON): every change made through chatgate.admin, newest first.

Data table (single-table design, `CHATGATE_TABLE_NAME`), regional:
  usage record   pk=WS#<workspace>      sk=USAGE#<day>#<model>  one per workspace, UTC day and model:
                 requests, prompt_tokens, completion_tokens, and counted_requests, counted_prompt_tokens,
                 counted_completion_tokens (the part chatgate counted because Azure sent no usage);
                 rate_limited (chatgate's own 429s); workspace_id, day, model, updated_at. Written with
                 one atomic UpdateItem `ADD` per request (stores/usage_dynamodb.py); a day range of a
                 workspace is one Query on the sort key.

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


def control_table(name: str) -> dict[str, Any]:
    """CreateTable arguments for the control table (locally; deployed, the template's global table): the
    data table's key design, so the same item shapes and index serve both."""
    return data_table(name)


def rate_limit_table(name: str) -> dict[str, Any]:
    """CreateTable arguments for the rate-limit counters table."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    }
