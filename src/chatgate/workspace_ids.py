"""What a workspace id may be, one rule for every door that creates or names a workspace (the CLI today)
and for the metrics line.

An id is 1 to 128 letters, digits or `_+=.@-`: the characters a Secrets Manager secret name allows, less `/`
(a workspace's bring-your-own-keys secret is named after it, `.../{workspace}/{region}`, and a `/` would make
two workspaces' names collide). So an id is printable ASCII, never blank, and always a valid CloudWatch
dimension value (at most 1,024 characters, no control characters): a line with an invalid dimension is
dropped by CloudWatch whole, the stack-wide series in it included.

Ids written before the rule (by another tool, or an older CLI) still work; their metrics go under one
dimension value, INVALID, and the id is logged (escaped) once per instance.
"""

from __future__ import annotations

import logging
import re

_RULE = re.compile(r"[A-Za-z0-9_+=.@-]{1,128}")
RULE = "1 to 128 letters, digits or _+=.@- (the characters of a Secrets Manager secret name, without /)"
# The metrics dimension value of every workspace whose id predates the rule.
INVALID = "invalid-workspace-id"
_MAX_LOGGED = 1_000

logger = logging.getLogger(__name__)
_logged: set[str] = set()


def valid(workspace_id: str) -> bool:
    return _RULE.fullmatch(workspace_id) is not None


def check(workspace_id: str) -> str:
    """The id as it is; ValueError saying the rule when it does not follow it."""
    if not valid(workspace_id):
        raise ValueError(f"invalid workspace id {workspace_id[:200]!r}: it must be {RULE}")
    return workspace_id


def dimension(workspace_id: str) -> str:
    """The id as a metrics dimension value: itself, or INVALID (logged once per instance)."""
    if valid(workspace_id):
        return workspace_id
    if workspace_id not in _logged and len(_logged) < _MAX_LOGGED:
        _logged.add(workspace_id)
        logger.warning(
            "workspace id %a does not follow the workspace id rule; its metrics are under Workspace=%s",
            workspace_id[:200],
            INVALID,
            extra={"fields": {"workspace_id": ascii(workspace_id[:200])}},
        )
    return INVALID
