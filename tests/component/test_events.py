"""Every payload in events/ runs through the Lambda handler (as `sam local invoke -e` / `chatgate invoke`
would) and gets the status its scenario promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatgate.app import create_app
from chatgate.cli import invoke_event, main
from chatgate.lambda_handler import make_handler
from tests.conftest import EVENT_WORKSPACE, Stack

EVENTS = Path(__file__).resolve().parents[2] / "events"

# file name -> (status, error code or None)
EXPECTED: dict[str, tuple[int, str | None]] = {
    "chat_completions_success.json": (200, None),
    "chat_completions_public_prefix.json": (200, None),
    "chat_completions_stream.json": (200, None),
    "chat_completions_bad_key.json": (401, "invalid_api_key"),
    "chat_completions_unsupported_parameter.json": (400, "unsupported_value"),
    "chat_completions_unknown_model.json": (404, "model_not_found"),
    "chat_completions_unknown_region.json": (404, "region_not_found"),
    "chat_completions_malformed_json.json": (400, "invalid_json"),
    "chat_completions_content_filter.json": (400, "content_filter"),
    "chat_completions_rate_limited.json": (429, "rate_limit_exceeded"),
    "models_list.json": (200, None),
    # The admin API refuses a model key (the events/ key is a workspace key).
    "admin_model_key_refused.json": (401, "invalid_api_key"),
    "responses_success.json": (200, None),
    "responses_stream.json": (200, None),
    "embeddings_success.json": (200, None),
}
# Scenarios that need state first: the workspace has already used its budget.
BUDGET_USED = {"chat_completions_rate_limited.json"}


def test_every_event_file_has_an_expectation() -> None:
    files = {path.name for path in EVENTS.glob("*.json")}
    assert files == set(EXPECTED), "add the new event to EXPECTED (or remove the stale entry)"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_through_the_lambda_handler(stack: Stack, name: str) -> None:
    event = json.loads((EVENTS / name).read_text())
    handler = make_handler(create_app(stack.settings))
    if name in BUDGET_USED:
        model = json.loads(event["body"])["model"]
        assert (
            main(
                [
                    "workspaces",
                    "limits",
                    "set",
                    "--workspace",
                    EVENT_WORKSPACE,
                    "--model",
                    model,
                    "--rpm",
                    "1",
                    "--tpm",
                    "100000",
                ]
            )
            == 0
        )
        assert invoke_event(event, handler)["statusCode"] == 200
    result = invoke_event(event, handler)
    status, code = EXPECTED[name]
    assert result["statusCode"] == status, result["body"]
    headers = {k.lower(): v for k, v in result["headers"].items()}
    assert headers["x-request-id"] == event["requestContext"]["requestId"]  # API Gateway's request id
    if code is None:
        if name == "responses_stream.json":
            assert headers["content-type"].startswith("text/event-stream")
            last = result["body"].rstrip().split("\n\n")[-1]
            assert last.startswith("event: response.completed\ndata: ")
        elif "stream" in name:
            assert headers["content-type"].startswith("text/event-stream")
            assert result["body"].rstrip().endswith("data: [DONE]")
        elif name.startswith("models"):
            assert json.loads(result["body"])["object"] == "list"
        elif name.startswith("responses"):
            assert json.loads(result["body"])["object"] == "response"
        elif name.startswith("embeddings"):
            answer = json.loads(result["body"])
            assert answer["object"] == "list" and len(answer["data"][0]["embedding"]) == 1536
        else:
            assert json.loads(result["body"])["object"] == "chat.completion"
    else:
        assert json.loads(result["body"])["error"]["code"] == code
    if status in (200, 429) and name.startswith(("chat_completions", "responses", "embeddings")):
        assert headers["x-ratelimit-limit-requests"]


def test_chatgate_invoke_prints_the_lambda_response(stack: Stack, capsys: pytest.CaptureFixture[Any]) -> None:
    assert main(["invoke", str(EVENTS / "chat_completions_success.json")]) == 0
    printed = json.loads(capsys.readouterr().out)  # stdout is the Lambda response alone
    assert printed["statusCode"] == 200
    headers = {k.lower(): v for k, v in printed["headers"].items()}
    assert headers["x-request-id"] == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"  # the event's requestId
    assert json.loads(printed["body"])["choices"][0]["message"]["content"]
