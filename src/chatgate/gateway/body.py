"""Read a request body: UTF-8 JSON, as RFC 8259 requires, with text that can be encoded again.

Invalid UTF-8 and lone UTF-16 surrogates (`"\\udc80"` in the JSON) are refused with a 400: such text can be
neither forwarded nor counted, and would otherwise fail deep inside the pipeline.
"""

from __future__ import annotations

import json
import re
from typing import Any

from chatgate.errors import InvalidRequest

_NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
    "valid JSON.)"
)
# A JSON escape of a UTF-16 surrogate (\\uD800-\\uDFFF): a pair decodes to one character, a lone one to a
# string that cannot be encoded (and so never forwarded or counted). Only bodies holding one are walked.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_body(raw: bytes) -> Any:
    """Parse the raw body as JSON (UTF-8, as RFC 8259 requires), or refuse it with OpenAI's wording.
    Invalid UTF-8 and lone UTF-16 surrogates are refused too: such text cannot be sent upstream."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"{_NOT_JSON} The body is not valid UTF-8 (invalid byte at position {exc.start}).",
            code="invalid_json",
        ) from None
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidRequest(_NOT_JSON, code="invalid_json") from None
    if _SURROGATE_ESCAPE.search(text):
        where = _unencodable(body)
        if where is not None:
            raise InvalidRequest(
                "Invalid string in the request body: it contains a lone UTF-16 surrogate (a \\uD800-\\uDFFF "
                "escape without its pair), which is not valid Unicode text.",
                param=where or None,
                code="invalid_encoding",
            )
    return body


def _unencodable(body: Any) -> str | None:
    """The path of the first string (value or key) that is not encodable as UTF-8, or None."""
    stack: list[tuple[str, Any]] = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else key
                if not _encodable(key):
                    return path
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))
    return None


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python accepts them, JSON does not
