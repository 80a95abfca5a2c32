"""The Responses API through the gateway on loopback, with the OpenAI SDK: create (JSON and stream),
retrieve, delete, input_items, continuing with previous_response_id; stored state private to each workspace;
residency; reasoning models on default settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest

from chatgate.cli import main
from chatgate.dev.azure_emulator_reply import CAT_POEM
from tests.conftest import EMULATOR_KEYS, Stack

CATS = "Write a short poem about cats."


def sdk(gateway: str, key: str, region: str = "eu", prefix: str = "") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}{prefix}/openai/{region}/v1", api_key=key, max_retries=0)


def test_create_retrieve_input_items_delete(gateway: str, stack: Stack) -> None:
    client = sdk(gateway, stack.key)
    raw = client.responses.with_raw_response.create(model="gpt-4o-mini", input=CATS, instructions="Rhyme.")
    created = raw.parse()
    assert created.output_text == CAT_POEM and created.usage is not None
    assert raw.headers["x-request-id"] and raw.headers["x-ratelimit-limit-tokens"]
    [sent] = stack.upstream("eu").requests
    assert sent.path == "/openai/v1/responses" and sent.query == {}
    assert sent.body == {"model": "gpt-4o-mini", "input": CATS, "instructions": "Rhyme."}
    assert sent.headers["api-key"] == EMULATOR_KEYS["eu"] and "authorization" not in sent.headers

    assert client.responses.retrieve(created.id).output_text == CAT_POEM
    items = client.responses.input_items.list(created.id)
    assert [item.type for item in items] == ["message"]
    client.responses.delete(created.id)
    requests_so_far = len(stack.upstream("eu").requests)
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.retrieve(created.id)
    assert caught.value.body["code"] == "not_found"  # type: ignore[index]
    assert len(stack.upstream("eu").requests) == requests_so_far  # answered by chatgate, not Azure


def test_stream_relays_the_typed_events_and_continues_a_conversation(gateway: str, stack: Stack) -> None:
    client = sdk(gateway, stack.key)
    first = client.responses.create(model="gpt-4o", input="My name is Ada.")
    with client.responses.stream(
        model="gpt-4o", input="What is my name?", previous_response_id=first.id
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    names = [event.type for event in events]
    assert names[:2] == ["response.created", "response.in_progress"] and names[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text and final.previous_response_id == first.id
    assert final.usage is not None and final.usage.input_tokens > first.usage.input_tokens  # type: ignore[union-attr]
    # The stream's own id was recorded for the workspace before it reached the client.
    assert client.responses.retrieve(final.id).id == final.id


def test_stream_wire_format(gateway: str, stack: Stack) -> None:
    with httpx.stream(
        "POST",
        f"{gateway}/openai/eu/v1/responses",
        headers={"authorization": f"Bearer {stack.key}"},
        json={"model": "gpt-4o-mini", "input": "hi", "stream": True},
    ) as response:
        body = response.read().decode()
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in body.split("\n\n") if f and not f.startswith(":")]
    for frame in frames:
        event, data = frame.split("\n")
        assert json.loads(data.removeprefix("data: "))["type"] == event.removeprefix("event: ")
    assert frames[-1].startswith("event: response.completed") and "[DONE]" not in body


def test_a_mid_stream_failure_is_an_error_event_the_sdk_raises(gateway: str, stack: Stack) -> None:
    client = sdk(gateway, stack.key)
    with (
        pytest.raises(openai.APIError),
        client.responses.stream(model="gpt-4o", input="[[words:20]] [[stream_reset_after:3]]") as stream,
    ):
        for _ in stream:
            pass


def test_another_workspace_cannot_read_continue_or_delete(gateway: str, stack: Stack) -> None:
    owner = sdk(gateway, stack.key)
    created = owner.responses.create(model="gpt-4o-mini", input="secret plans")
    other = sdk(gateway, stack.create_key("other-workspace"))
    before = len(stack.upstream("eu").requests)
    continued = "previous_response_id"  # a continuation's 404 names the field, as OpenAI's does
    calls = [
        (None, lambda: other.responses.retrieve(created.id)),
        (None, lambda: other.responses.delete(created.id)),
        (None, lambda: other.responses.input_items.list(created.id)),
        (
            continued,
            lambda: other.responses.create(
                model="gpt-4o-mini", input="go on", previous_response_id=created.id
            ),
        ),
        (
            continued,
            lambda: other.responses.create(
                model="gpt-4o-mini", input="go on", previous_response_id=created.id, stream=True
            ),
        ),
        (None, lambda: owner.responses.retrieve("resp_never_created")),
    ]
    for param, call in calls:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.body == {  # type: ignore[comparison-overlap]
            "message": caught.value.body["message"],  # type: ignore[index]
            "type": "invalid_request_error",
            "param": param,
            "code": "not_found",
        }
    assert len(stack.upstream("eu").requests) == before  # nothing reached Azure
    assert owner.responses.retrieve(created.id).output_text  # still the owner's


@pytest.mark.parametrize("length", [2043, 2044, 20_000])
def test_an_id_longer_than_a_stored_id_can_be_is_404_not_503(gateway: str, stack: Stack, length: int) -> None:
    """Every route that takes a response id. (moto accepts keys DynamoDB refuses: the refusal itself, and
    the store's answer to it, are proven on dynalite in test_ownership_dynalite.py.)"""
    client = sdk(gateway, stack.key)
    long_id = "resp_" + "x" * (length - 5)
    before = len(stack.upstream("eu").requests)
    calls = [
        lambda: client.responses.retrieve(long_id),
        lambda: client.responses.delete(long_id),
        lambda: client.responses.input_items.list(long_id),
        lambda: client.responses.create(model="gpt-4o-mini", input="go on", previous_response_id=long_id),
        lambda: client.responses.create(
            model="gpt-4o-mini", input="go on", previous_response_id=long_id, stream=True
        ),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.code == "not_found"
    assert len(stack.upstream("eu").requests) == before  # nothing reached Azure


def test_store_false_is_not_recorded(gateway: str, stack: Stack) -> None:
    client = sdk(gateway, stack.key)
    created = client.responses.create(model="gpt-4o-mini", input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_us_requests_reach_only_the_us_upstream(gateway: str, stack: Stack) -> None:
    client = sdk(gateway, stack.key, "us", prefix="/api/public")
    created = client.responses.create(model="gpt-4.1", input="hi")
    with client.responses.stream(model="gpt-4.1", input="hi", previous_response_id=created.id) as stream:
        stream.get_final_response()
    client.responses.retrieve(created.id)
    assert stack.upstream("eu").requests == []
    assert [r.path for r in stack.upstream("us").requests][:2] == ["/openai/v1/responses"] * 2
    # An EU path does not find the US response (and does not ask the EU resource).
    with pytest.raises(openai.NotFoundError):
        sdk(gateway, stack.key, "eu").responses.retrieve(created.id)
    assert stack.upstream("eu").requests == []


@pytest.mark.parametrize("model", ["o3-mini", "o4-mini"])
def test_reasoning_models_on_default_settings_through_both_apis(
    gateway: str, stack: Stack, model: str
) -> None:
    for region in ("eu", "us"):  # the default upstream: no api_version, i.e. Azure's v1 surface
        stack.put_upstream(
            region, {"endpoint": stack.emulators[region].url, "api_key": EMULATOR_KEYS[region]}
        )
    client = sdk(gateway, stack.key)
    completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content
    response = client.responses.create(model=model, input="hi")
    assert response.output_text and response.usage.output_tokens_details.reasoning_tokens > 0  # type: ignore[union-attr]
    with client.responses.stream(model=model, input="hi") as stream:
        assert stream.get_final_response().status == "completed"
    paths = [r.path for r in stack.upstream("eu").requests]
    assert paths == ["/openai/v1/chat/completions"] + ["/openai/v1/responses"] * 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "gpt-4o", "input": "hi", "temperature": 3}, 400, "decimal_above_max_value"),
        ({"model": "gpt-4o", "input": "hi", "background": True}, 400, "unsupported_parameter"),
        ({"model": "nope", "input": "hi"}, 404, "model_not_found"),
        ({"model": "gpt-4o", "input": "[[content_filter]]"}, 400, "content_filter"),
        ({"model": "gpt-4o", "input": "[[rate_limit]]"}, 429, "rate_limit_exceeded"),
        ({"model": "gpt-4o", "input": "[[server_error]]"}, 502, None),
    ],
)
def test_errors_map_as_for_chat_completions(
    gateway: str, stack: Stack, body: dict[str, object], status: int, code: str | None
) -> None:
    response = httpx.post(
        f"{gateway}/openai/eu/v1/responses", headers={"authorization": f"Bearer {stack.key}"}, json=body
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code


def test_usage_is_settled_from_azures_usage_before_the_response_ends(
    gateway: str, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    client = sdk(gateway, stack.create_key("metered"))
    created = client.responses.create(model="o4-mini", input=CATS)
    with client.responses.stream(model="o4-mini", input="[[words:30]]", max_output_tokens=200) as stream:
        streamed = stream.get_final_response()
    # Settled before each body ended (no waiting): the usage record already holds both, as Azure counted.
    today = datetime.now(UTC).date()
    argv = ["usage", "--workspace", "metered", "--json"]
    argv += ["--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1))]
    capsys.readouterr()
    assert main(argv) == 0
    [record] = json.loads(capsys.readouterr().out)["records"]
    assert created.usage is not None and streamed.usage is not None
    assert record["model"] == "o4-mini" and record["requests"] == 2
    assert record["prompt_tokens"] == created.usage.input_tokens + streamed.usage.input_tokens
    assert record["completion_tokens"] == created.usage.output_tokens + streamed.usage.output_tokens
    assert record["counted_requests"] == 0
