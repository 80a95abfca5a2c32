"""Fixtures for the deployment tests: the template, and the template as the SAM translator transforms it.

The SAM translator comes with aws-sam-cli in .venv-sam (it pins its own boto3 and pydantic, so it is kept
out of the project's virtualenv); `make sam-venv` creates it, and these fixtures run that target when it is
missing, so `pytest tests/deploy` works on a fresh clone too.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .cfn import ROOT, load_template, packaged

SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
TRANSFORM_SCRIPT = Path(__file__).with_name("sam_transform.py")

# The function under the names SAM uses in these probe templates.
_PROBE_FUNCTION = {
    "Type": "AWS::Serverless::Function",
    "Properties": {"Runtime": "python3.13", "Handler": "run.sh", "CodeUri": "s3://bucket/key.zip"},
}


def _function(events: dict[str, Any], condition: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = json.loads(json.dumps(_PROBE_FUNCTION))
    function["Properties"]["Events"] = events
    if condition:
        function["Condition"] = condition
    return function


def _probe(functions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A minimal SAM template: one REST API (`Api`) and the given functions."""
    return {
        "Transform": "AWS::Serverless-2016-10-31",
        "Parameters": {"Streaming": {"Type": "String", "Default": "true"}},
        "Conditions": {
            "StreamingEnabled": {"Fn::Equals": [{"Ref": "Streaming"}, "true"]},
            "StreamingDisabled": {"Fn::Not": [{"Condition": "StreamingEnabled"}]},
        },
        "Resources": {
            "Api": {"Type": "AWS::Serverless::Api", "Properties": {"StageName": "prod"}},
            **functions,
        },
    }


def api_event(transfer_mode: Any, timeout: int = 900000) -> dict[str, Any]:
    return {
        "Type": "Api",
        "Properties": {
            "RestApiId": {"Ref": "Api"},
            "Path": "/{proxy+}",
            "Method": "ANY",
            "ResponseTransferMode": transfer_mode,
            "TimeoutInMillis": timeout,
        },
    }


def _ensure_sam_translator() -> None:
    if SAM_PYTHON.exists():
        return
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "sam-venv"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0 or not SAM_PYTHON.exists():
        pytest.fail(f"could not create .venv-sam (make sam-venv):\n{result.stdout}\n{result.stderr}")


def sam_transform(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Transform templates with the real SAM translator; one {"template"} or {"error"} per job."""
    _ensure_sam_translator()
    env = {**os.environ, "AWS_DEFAULT_REGION": "eu-central-1", "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [str(SAM_PYTHON), str(TRANSFORM_SCRIPT)],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if result.returncode != 0:
        pytest.fail(f"the SAM translator failed:\n{result.stderr}")
    results: list[dict[str, Any]] = json.loads(result.stdout)
    return results


# Parameter sets the tests look at: (stack region label, overrides).
MODES: dict[str, dict[str, str]] = {
    "streaming": {"RegionLabel": "eu"},
    "buffered": {"RegionLabel": "eu", "Streaming": "false"},
    "us_unmanaged_account": {"RegionLabel": "us", "ManageApiGatewayAccountRole": "false"},
}

PROBES: dict[str, dict[str, Any]] = {
    "literal_event": _probe({"Fn": _function({"Api": api_event("RESPONSE_STREAM")})}),
    "if_event": _probe(
        {"Fn": _function({"Api": api_event({"Fn::If": ["StreamingEnabled", "RESPONSE_STREAM", "BUFFERED"]})})}
    ),
    "ref_event": _probe({"Fn": _function({"Api": api_event({"Ref": "Streaming"})})}),
    "two_conditional_functions": _probe(
        {
            "Fn": _function({"Api": api_event("RESPONSE_STREAM")}, "StreamingEnabled"),
            "BufferedFn": _function({"Api": api_event("BUFFERED", 29000)}, "StreamingDisabled"),
        }
    ),
}


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def transformed(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """SAM translator output: each of MODES (template.yaml) and PROBES (minimal templates), by name."""
    names = [*MODES, *PROBES]
    jobs = [{"template": packaged(template), "parameters": params} for params in MODES.values()]
    jobs += [{"template": probe, "parameters": {}} for probe in PROBES.values()]
    return dict(zip(names, sam_transform(jobs), strict=True))
