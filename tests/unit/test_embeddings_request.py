"""The Embeddings API's body: the spec's four input shapes, OpenAI's limits (2,048 inputs, 8,192 tokens each,
300,000 in all), counting with the model's tokenizer, and the forwarding policy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatgate.errors import InvalidRequest
from chatgate.gateway.apis.embeddings import EMBEDDINGS, usage_of
from chatgate.gateway.embeddings_request import (
    MAX_INPUT_TOKENS,
    MAX_REQUEST_TOKENS,
    count_input_tokens,
    validate_embeddings_request,
)
from chatgate.limits import tokens
from chatgate.limits.tokens import TokenUsage

MODEL = "text-embedding-3-small"


def body(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "input": "The food was delicious.", **extra}


def rejected(value: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        validate_embeddings_request(value)
    assert caught.value.status_code == 400 and caught.value.error_type == "invalid_request_error"
    return caught.value


@pytest.mark.parametrize(
    ("value", "inputs"),
    [
        ("one text", ("one text",)),
        (["a", "b"], ("a", "b")),
        ([1212, 318, 257], ([1212, 318, 257],)),
        ([[1212, 318], [257]], ([1212, 318], [257])),
        ([1212.0, 318], ([1212, 318],)),  # an integer written with a zero fraction
    ],
)
def test_the_four_input_shapes(value: Any, inputs: tuple[Any, ...]) -> None:
    request = validate_embeddings_request(body(input=value))
    assert request.inputs == inputs
    assert request.stream is False and request.max_output_tokens is None
    assert request.forward["input"] == value


def test_token_ids_written_with_a_zero_fraction_are_sent_as_integers() -> None:
    assert [type(t) for t in validate_embeddings_request(body(input=[1.0, 2])).forward["input"]] == [int, int]
    nested = validate_embeddings_request(body(input=[[1.0], [2]])).forward["input"]
    assert nested == [[1], [2]] and type(nested[0][0]) is int


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": MODEL}, "input"),
        (body(model=""), "model"),
        (body(model=3), "model"),
        (body(input=3), "input"),
        (body(input=[]), "input"),
        (body(input=["a"] * 2049), "input"),
        (body(input=["a", 1]), "input[1]"),
        (body(input=[1, "a"]), "input[1]"),
        (body(input=[1, 2.5]), "input[1]"),
        (body(input=[[1], []]), "input[1]"),
        (body(input=[[1], "a"]), "input[1]"),
        (body(input=[{"text": "a"}]), "input[0]"),
        (body(input=[True]), "input[0]"),
        (body(dimensions=0), "dimensions"),
        (body(dimensions="256"), "dimensions"),
        (body(encoding_format=1), "encoding_format"),
        (body(user=["u"]), "user"),
        (body(data_sources=[]), "data_sources"),
    ],
)
def test_refusals_name_the_parameter(value: dict[str, Any], param: str) -> None:
    assert rejected(value).param == param


def test_2048_inputs_are_accepted() -> None:
    assert len(validate_embeddings_request(body(input=["a"] * 2048)).inputs) == 2048


def test_other_fields_are_forwarded_as_sent() -> None:
    request = validate_embeddings_request(
        body(dimensions=256.0, encoding_format="base64", user="u", a_field_added_later={"x": 1}, extra=None)
    )
    assert request.forward == body(
        dimensions=256, encoding_format="base64", user="u", a_field_added_later={"x": 1}
    )
    assert type(request.forward["dimensions"]) is int


def test_counting_uses_the_models_tokenizer_and_token_ids_count_as_their_length() -> None:
    encoding = tokens.encoding_for(MODEL)
    assert encoding.name == "cl100k_base"
    texts = ("The food was delicious.", "and the waiter was friendly")
    assert count_input_tokens(MODEL, texts) == sum(len(encoding.encode(text)) for text in texts)
    assert count_input_tokens(MODEL, ([1, 2, 3], [4])) == 4
    assert count_input_tokens(MODEL, ("",)) == 0


def test_an_input_over_8192_tokens_is_a_400() -> None:
    assert count_input_tokens(MODEL, ([0] * MAX_INPUT_TOKENS,)) == MAX_INPUT_TOKENS
    for inputs in (([0] * (MAX_INPUT_TOKENS + 1),), ("ok", " hello" * (MAX_INPUT_TOKENS + 1))):
        with pytest.raises(InvalidRequest) as caught:
            count_input_tokens(MODEL, inputs)
        assert caught.value.code == "context_length_exceeded"
        assert caught.value.param == ("input" if len(inputs) == 1 else "input[1]")


def test_inputs_over_300000_tokens_in_all_are_a_400() -> None:
    fits = ([0] * MAX_INPUT_TOKENS,) * (MAX_REQUEST_TOKENS // MAX_INPUT_TOKENS)
    assert count_input_tokens(MODEL, fits) == len(fits) * MAX_INPUT_TOKENS
    with pytest.raises(InvalidRequest) as caught:
        count_input_tokens(MODEL, (*fits, [0] * MAX_INPUT_TOKENS))
    assert caught.value.param == "input" and caught.value.code == "max_tokens_per_request"


def test_counting_stops_past_the_callers_limit() -> None:
    """A request above the caller's TPM is refused whatever its size: counting stops there (a count above
    the limit is returned), not at 300,000."""
    counted = count_input_tokens(MODEL, (" word" * 5000,) * 40, stop_above=6000)
    assert 6000 < counted < 20_000


async def test_the_adapter_reserves_no_completion_and_counts_off_the_loop_when_large() -> None:
    assert EMBEDDINGS.reserves_completion is False
    raw = b'{"model": "text-embedding-3-small", "input": ["' + b"word " * 4000 + b'"]}'
    request = EMBEDDINGS.parse(raw)
    assert request.body_size == len(raw)
    assert await EMBEDDINGS.prompt_tokens(request) == len(tokens.encoding_for(MODEL).encode("word " * 4000))


def test_usage_is_all_prompt() -> None:
    assert usage_of({"prompt_tokens": 8, "total_tokens": 8}) == TokenUsage(8, 0, "azure")
    assert usage_of({"total_tokens": 5}) == TokenUsage(5, 0, "azure")
    assert usage_of({"prompt_tokens": -1}) is None
    assert usage_of(None) is None


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries(
        {"model": st.sampled_from([MODEL, "", 3, None])},
        optional={
            "input": JSON
            | st.lists(st.integers(-5, 2**40), max_size=5)
            | st.lists(st.text(max_size=9), max_size=3),
            "dimensions": JSON,
            "encoding_format": JSON,
            "user": JSON,
            "data_sources": JSON,
            "unknown": JSON,
        },
    )
)
def test_any_body_is_a_request_or_a_400_and_counts(value: dict[str, Any]) -> None:
    try:
        request = validate_embeddings_request(value)
    except InvalidRequest as error:
        assert error.status_code == 400 and error.to_dict()["error"]["message"]
        return
    json.dumps(request.forward)
    assert count_input_tokens(MODEL, request.inputs) >= 0
