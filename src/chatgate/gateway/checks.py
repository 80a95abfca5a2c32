"""Generic checks of JSON request parameters, worded as OpenAI words its 400s.

A Check takes (param, value, body) and raises InvalidRequest naming `param` when the value does not fit.
validation.py composes them into the checks of each chat completions parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from chatgate.errors import InvalidRequest

Check = Callable[[str, Any, Mapping[str, Any]], None]


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def type_error(param: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid type for '{param}': expected {expected}, but got {kind_of(value)} instead.",
        param=param,
        code="invalid_type",
    )


def value_error(param: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(f"Invalid '{param}': {message}", param=param, code=code)


def refused(param: str, message: str) -> InvalidRequest:
    """A field chatgate will not forward (the contract names each one), whatever its value."""
    return InvalidRequest(message, param=param, code="unsupported_parameter")


# Azure extensions that make the platform's resource act outside the request ("on your data" retrieval
# from a search index, database or vector store; vision enhancements through another Azure resource),
# under their current and their pre-2024 names. Refused in every API, whatever their value.
AZURE_EXTENSIONS = ("data_sources", "dataSources", "enhancements")


def denied(body: Mapping[str, Any]) -> None:
    """Refuse a body that names one of the Azure extensions of the contract's denylist."""
    for name in AZURE_EXTENSIONS:
        if name in body:
            raise refused(
                name,
                f"'{name}' is an Azure OpenAI extension this gateway does not forward: it would make the "
                "platform's Azure resource reach data or services outside the request.",
            )


def missing(param: str) -> InvalidRequest:
    return InvalidRequest(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def is_int(value: Any) -> bool:
    """An integer as JSON Schema (and so OpenAI's spec) defines one: `16` and `16.0` alike."""
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def as_int(value: Any) -> Any:
    """`value` as a Python int when it is an integer written with a zero fraction (`16.0`), else as it is:
    what chatgate reserves by and forwards is the integer the client meant."""
    return int(value) if isinstance(value, float) and is_int(value) else value


def is_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def number(low: float, high: float) -> Check:
    return _within("decimal", "a decimal", is_number, low, high, "g")


def integer(low: float, high: float = math.inf) -> Check:
    """An integer (a zero fraction allowed, as in JSON Schema) within [low, high]; no upper bound unless one
    is given (only the seeds and the spec state bounds)."""
    return _within("integer", "an integer", is_int, low, high, "")


def _within(
    noun: str, kind: str, accepts: Callable[[Any], bool], low: float, high: float, shown: str
) -> Check:
    """A value `accepts` takes (else a type error naming `kind`) within [low, high], in OpenAI's words:
    "<noun> below minimum value. Expected a value >= <low>, but got <value> instead." (`shown` formats the
    bound), code "<noun>_below_min_value"; and the same above the maximum."""

    def check(param: str, value: Any, _body: Mapping[str, Any]) -> None:
        if not accepts(value):
            raise type_error(param, kind, value)
        if low <= value <= high:
            return
        below = value < low
        where, sign, bound = ("below minimum", ">=", low) if below else ("above maximum", "<=", high)
        raise value_error(
            param,
            f"{noun} {where} value. Expected a value {sign} {format(bound, shown)}, but got {value} instead.",
            f"{noun}_{'below_min' if below else 'above_max'}_value",
        )

    return check


def boolean(param: str, value: Any, _body: Mapping[str, Any]) -> None:
    if not isinstance(value, bool):
        raise type_error(param, "a boolean", value)


def string(param: str, value: Any, _body: Mapping[str, Any]) -> None:
    if not isinstance(value, str):
        raise type_error(param, "a string", value)


def json_object(param: str, value: Any, _body: Mapping[str, Any]) -> None:
    if not isinstance(value, dict):
        raise type_error(param, "an object", value)


def one_of(*choices: str) -> Check:
    def check(param: str, value: Any, _body: Mapping[str, Any]) -> None:
        if not isinstance(value, str):
            raise type_error(param, "a string", value)
        if value not in choices:
            supported = ", ".join(f"'{c}'" for c in choices)
            raise value_error(
                param, f"value must be one of {supported}, but got '{value}' instead.", "invalid_value"
            )

    return check


def array(param: str, value: Any, low: int, high: float = math.inf) -> list[Any]:
    if not isinstance(value, list):
        raise type_error(param, "an array", value)
    if len(value) < low:
        if not value:
            raise value_error(
                param,
                f"empty array. Expected an array with minimum length {low}, but got an empty array instead.",
                "empty_array",
            )
        raise value_error(
            param,
            f"array too short. Expected an array with minimum length {low}, "
            f"but got an array with length {len(value)} instead.",
            "array_below_min_length",
        )
    if len(value) > high:
        raise value_error(
            param,
            f"array too long. Expected an array with maximum length {high}, "
            f"but got an array with length {len(value)} instead.",
            "array_above_max_length",
        )
    return value


def string_array(low: int, high: float = math.inf) -> Check:
    def check(param: str, value: Any, _body: Mapping[str, Any]) -> None:
        for i, item in enumerate(array(param, value, low, high)):
            string(f"{param}[{i}]", item, _body)

    return check
