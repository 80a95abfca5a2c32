"""The metrics line is Powertools' EMF (values as arrays, its directive layout) with chatgate's series: no
`service` dimension even where POWERTOOLS_SERVICE_NAME is set (the dashboard and alarms name the series
without it), one line per request with errors' `ErrorsByClass` as a second directive, and
POWERTOOLS_METRICS_DISABLED honoured as Powertools' flush_metrics honours it."""

from __future__ import annotations

import io
import json

import pytest

from chatgate.observability.metrics import MetricsConfig, emit
from chatgate.observability.observation import RequestObservation
from tests.support.emf import check


def failed_request() -> RequestObservation:
    observation = RequestObservation("req_1", method="POST", path="/openai/eu/v1/chat/completions")
    observation.identify(region="eu", workspace="acme", model="gpt-4o")
    observation.settled(12, 3)
    observation.status = 502
    observation.failed(502, upstream=True)
    return observation


def test_one_line_in_powertools_shape_without_a_service_dimension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "chatgate")
    out = io.StringIO()
    emit(failed_request(), MetricsConfig(namespace="gw"), out)
    [line] = out.getvalue().splitlines()
    record = json.loads(line)
    check(record)
    directives = record["_aws"]["CloudWatchMetrics"]
    assert [d["Dimensions"] for d in directives] == [
        [["Region", "Api", "Model", "Workspace"], ["Region", "Api", "Model"], ["Region"]],
        [["Region", "Api", "ErrorClass"]],
    ]
    assert {d["Namespace"] for d in directives} == {"gw"}
    assert "service" not in record
    assert (record["InputTokens"], record["ErrorsByClass"], record["ErrorClass"]) == (
        [12.0],
        [1.0],
        "upstream",
    )
    assert (record["request_id"], record["status"]) == ("req_1", 502)


def test_powertools_metrics_disabled_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    out = io.StringIO()
    emit(failed_request(), MetricsConfig(), out)
    assert out.getvalue() == ""


def test_an_instances_first_request_adds_powertools_cold_start_metric(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chatgate-fn")
    out = io.StringIO()
    emit(failed_request(), MetricsConfig(), out, cold_start=True)
    warm = failed_request()
    emit(warm, MetricsConfig(), out)
    cold_line, warm_line = (json.loads(line) for line in out.getvalue().splitlines())
    check(cold_line)
    [directive] = [
        d for d in cold_line["_aws"]["CloudWatchMetrics"] if d["Metrics"][0]["Name"] == "ColdStart"
    ]
    assert directive["Dimensions"] == [["function_name"]]
    assert (cold_line["ColdStart"], cold_line["function_name"]) == ([1.0], "chatgate-fn")
    assert "ColdStart" not in warm_line and len(warm_line["_aws"]["CloudWatchMetrics"]) == 2
