"""Run the SAM translator offline: JSON jobs on stdin, JSON results on stdout.

Run with .venv-sam's interpreter (aws-sam-cli brings aws-sam-translator; it pins its own boto3 and pydantic,
so it stays out of the project's virtualenv). Input: [{"template": {...}, "parameters": {...}}, ...].
Output: one {"template": {...}} or {"error": "..."} per job, in order. No AWS call is made: the template
uses no SAM policy templates or managed policy names, so the managed-policy map is empty.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("AWS_DEFAULT_REGION", "eu-central-1")

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform


class _NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def run(job: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"template": transform(job["template"], dict(job.get("parameters", {})), _NoManagedPolicies())}
    except InvalidDocumentException as exc:
        return {"error": "; ".join(str(cause) for cause in exc.causes)}


def main() -> int:
    jobs = json.load(sys.stdin)
    json.dump([run(job) for job in jobs], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
