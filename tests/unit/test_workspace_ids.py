"""The workspace id rule: what the CLI accepts when a workspace is created or named, and what the metrics line
does with an id written before the rule (one dimension value that says so, and a log line)."""

from __future__ import annotations

import io
import logging

import pytest

from chatgate import workspace_ids
from chatgate.cli import main
from chatgate.observability.metrics import MetricsConfig, emit
from chatgate.observability.observation import RequestObservation
from tests.support.emf import emf_records

GOOD = ["acme", "a", "team.eu-1", "ops@example.com", "A_b+c=d", "x" * 128]
BAD = ["", " ", "   ", "acme corp", "café", "a\nb", "a\x00", "tab\t", "a/b", "x" * 129, "x" * 1025, "é" * 10]


@pytest.mark.parametrize("workspace", GOOD)
def test_ids_that_follow_the_rule(workspace: str) -> None:
    assert workspace_ids.check(workspace) == workspace
    assert workspace_ids.dimension(workspace) == workspace


@pytest.mark.parametrize("workspace", BAD)
def test_ids_that_do_not(workspace: str) -> None:
    with pytest.raises(ValueError, match="1 to 128 letters"):
        workspace_ids.check(workspace)


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "create", "--workspace", "{w}"],
        ["keys", "list", "--workspace", "{w}"],
        ["workspaces", "limits", "set", "--workspace", "{w}", "--model", "m", "--rpm", "1", "--tpm", "1"],
        ["workspaces", "limits", "show", "--workspace", "{w}"],
        ["workspaces", "limits", "remove", "--workspace", "{w}", "--model", "gpt-4o"],
        ["usage", "--workspace", "{w}"],
    ],
    ids=lambda argv: " ".join(argv[:3]),
)
@pytest.mark.parametrize("workspace", ["acme corp", "x" * 129, "caf\u00e9"])
def test_every_command_that_names_a_workspace_refuses_an_id_off_the_rule(  # byok: test_byok.py
    argv: list[str], workspace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse refuses before any AWS call is made
        main([part.format(w=workspace) for part in argv])
    assert exited.value.code == 2
    assert "invalid workspace id" in capsys.readouterr().err


def test_the_metrics_line_puts_an_id_off_the_rule_under_one_value_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = io.StringIO()
    for workspace in ["acme", "caf\u00e9 \x07" + "x" * 2000, "   "]:
        observation = RequestObservation(request_id="r")
        observation.identify(region="eu", workspace=workspace, model="gpt-4o")
        with caplog.at_level(logging.WARNING, logger="chatgate.workspace_ids"):
            emit(observation, MetricsConfig(), out)
    lines = emf_records(out.getvalue())
    assert [line["Workspace"] for line in lines] == ["acme", workspace_ids.INVALID, workspace_ids.INVALID]
    assert all(line["Model"] == "gpt-4o" for line in lines)  # the rest of each line is intact
    logged = [record.getMessage() for record in caplog.records]
    assert len(logged) == 2 and "caf\\xe9 \\x07" in logged[0]
