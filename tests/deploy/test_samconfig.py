"""samconfig.toml: `sam build && sam deploy --config-env eu|us` deploys a region, no prompts."""

from __future__ import annotations

import shlex
import tomllib
from typing import Any

import pytest

from .cfn import ROOT, load_template

CONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))


def overrides(deploy: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(deploy["parameter_overrides"]))


@pytest.mark.parametrize(("env", "aws_region"), [("eu", "eu-central-1"), ("us", "us-east-1")])
def test_each_environment_deploys_its_region_label_to_its_region(env, aws_region):
    deploy = CONFIG[env]["deploy"]["parameters"]
    template = load_template()

    assert deploy["region"] == aws_region
    assert deploy["stack_name"] == f"chatgate-{env}"
    assert overrides(deploy)["RegionLabel"] == env
    assert set(overrides(deploy)) <= set(template["Parameters"])
    # The stack creates IAM roles; the artifacts bucket is SAM's managed one; no interactive confirmation.
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is False


@pytest.mark.parametrize("env", ["default", "eu", "us"])
def test_builds_run_in_the_source_tree_for_the_makefile_builds(env):
    assert CONFIG[env]["build"]["parameters"]["build_in_source"] is True
