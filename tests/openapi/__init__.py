"""Subsets of OpenAI's published OpenAPI spec (extracted by extract.py) and validators built from them.

    from tests.openapi import validator
    validator("admin.json", "Project").validate(body)   # raises jsonschema.ValidationError

Component names are those of `components/schemas` in the subset; `$ref`s resolve inside the same document.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HERE = Path(__file__).parent


@cache
def subset(name: str) -> dict[str, Any]:
    """One vendored subset (inference.json, admin.json), parsed."""
    document: dict[str, Any] = json.loads((HERE / name).read_text(encoding="utf-8"))
    return document


@cache
def validator(name: str, schema: str) -> Draft202012Validator:
    """A validator for `components/schemas/<schema>` of the subset `name`."""
    document = subset(name)
    uri = f"urn:openai:{name}"
    registry: Registry[Any] = Registry().with_resource(uri, Resource.from_contents(document, DRAFT202012))
    return Draft202012Validator({"$ref": f"{uri}#/components/schemas/{schema}"}, registry=registry)
