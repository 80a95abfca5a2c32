"""Reading template.yaml the way CloudFormation does, for the deployment tests.

- `load_template`: YAML with the short-form intrinsics (!Ref, !Sub, !If, ...) turned into their long form.
- `resolve`: what CloudFormation evaluates at deploy time for given parameter values: Conditions, Fn::If,
  AWS::NoValue, resources whose Condition is false. Everything else (Ref, Fn::Sub, Fn::GetAtt) stays as it
  is, so tests compare against the template's own expressions.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

_NO_VALUE = object()


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form tags."""


def _construct_intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as a plain dict, intrinsics in long form."""
    loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)
    assert isinstance(loaded, dict)
    return loaded


def parameter_values(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Every parameter's value: its default, unless overridden (as `sam deploy --parameter-overrides`)."""
    values = {
        name: str(spec["Default"])
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }
    values.update(overrides or {})
    return values


def _evaluate(expr: Any, params: dict[str, str], conditions: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(expr, dict) and len(expr) == 1:
        ((key, arg),) = expr.items()
        if key == "Ref" and arg in params:
            return params[arg]
        if key == "Condition":
            return _condition(arg, params, conditions, seen)
        if key == "Fn::Equals":
            left, right = (_evaluate(a, params, conditions, seen) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not _evaluate(arg[0], params, conditions, seen)
        if key == "Fn::And":
            return all(_evaluate(a, params, conditions, seen) for a in arg)
        if key == "Fn::Or":
            return any(_evaluate(a, params, conditions, seen) for a in arg)
    if isinstance(expr, str):
        return expr
    raise ValueError(f"cannot evaluate condition expression {expr!r}")


def _condition(name: str, params: dict[str, str], conditions: dict[str, Any], seen: tuple[str, ...]) -> bool:
    if name in seen:
        raise ValueError(f"condition cycle through {name}")
    return bool(_evaluate(conditions[name], params, conditions, (*seen, name)))


def evaluate_conditions(template: dict[str, Any], params: dict[str, str]) -> dict[str, bool]:
    conditions = template.get("Conditions", {})
    return {name: _condition(name, params, conditions, ()) for name in conditions}


def _apply(node: Any, truth: dict[str, bool]) -> Any:
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node:
            condition, when_true, when_false = node["Fn::If"]
            return _apply(when_true if truth[condition] else when_false, truth)
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        out = {}
        for key, value in node.items():
            applied = _apply(value, truth)
            if applied is not _NO_VALUE:
                out[key] = applied
        return out
    if isinstance(node, list):
        return [applied for item in node if (applied := _apply(item, truth)) is not _NO_VALUE]
    return node


def resolve(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The template as CloudFormation would deploy it with these parameter values."""
    params = parameter_values(template, overrides)
    truth = evaluate_conditions(template, params)
    out = copy.deepcopy(template)
    out["Resources"] = {
        name: resource
        for name, resource in out.get("Resources", {}).items()
        if truth.get(resource.get("Condition", ""), True)
    }
    for section in ("Resources", "Outputs"):
        if section in out:
            out[section] = _apply(out[section], truth)
    return out


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


def sub_text(value: Any) -> str:
    """The string of a `Fn::Sub` (either form), or the plain string."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    assert isinstance(value, str), value
    return value


def substitute(text: str, params: dict[str, str]) -> str:
    """Fill ${Param} placeholders of a Fn::Sub string with parameter values (others are left as they are)."""
    for name, value in params.items():
        text = text.replace("${" + name + "}", value)
    return text


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    """The template as `sam package` hands it to the SAM transform: local code folders become S3 URIs."""
    out = copy.deepcopy(template)
    for name, resource in out.get("Resources", {}).items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str) and not props[key].startswith("s3://"):
                props[key] = f"s3://chatgate-artifacts/{name}.zip"
    return out
