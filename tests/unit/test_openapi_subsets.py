"""The vendored subsets of OpenAI's OpenAPI spec are self-contained: every operation extract.py lists is
there, and every `$ref` resolves inside its own file (a validator built from them cannot fail on a missing
reference halfway through a test)."""

from __future__ import annotations

import pytest

from tests.openapi import subset, validator
from tests.openapi.extract import HTTP_METHODS, SUBSETS, _refs, _resolve


@pytest.mark.parametrize("name", sorted(SUBSETS))
def test_subset_holds_its_operations_and_resolves_every_reference(name: str) -> None:
    document = subset(name)
    operations = {
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }
    assert operations == set(SUBSETS[name])
    for ref in _refs(document):
        _resolve(document, ref)  # KeyError if the extraction left one out


def test_validator_reports_what_a_body_lacks() -> None:
    errors = [e.message for e in validator("admin.json", "Project").iter_errors({"id": "proj_1"})]
    assert "'object' is a required property" in errors
    assert not list(
        validator("inference.json", "ErrorResponse").iter_errors(
            {"error": {"message": "m", "type": "invalid_request_error", "param": None, "code": None}}
        )
    )
