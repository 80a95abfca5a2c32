"""Observability in the translated template: active tracing on the function and the stage, the function's
metrics settings, the dashboard (valid JSON naming the metrics the app writes), and the alarms with their
optional SNS topic."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from chatgate.observability.metrics import PER_MODEL, PER_POOL, PER_RESOURCE, PER_WORKSPACE, STACK
from chatgate.observability.observation import RequestObservation

from .cfn import parameter_values, resolve, resources_of_type, sub_text, substitute
from .conftest import MODES
from .test_template import deployed, function, only

TOPIC = "arn:aws:sns:eu-central-1:123456789012:chatgate-ops"
ALARMS = {
    "ServerErrorRateAlarm",
    "UpstreamErrorsAlarm",
    "DynamoDbThrottlesAlarm",
    "LambdaThrottlesAlarm",
    "UpstreamPoolExhaustedAlarm",
    "UnsettledWritesAlarm",
}


def dashboard(stack: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The dashboard body as CloudFormation would send it (stack parameters and resource names filled)."""
    body = sub_text(
        only(resources_of_type(stack, "AWS::CloudWatch::Dashboard"))["Properties"]["DashboardBody"]
    )
    text = substitute(body, parameter_values(stack, {"RegionLabel": "eu", **(overrides or {})}))
    text = substitute(text, {"AWS::Region": "eu-central-1"})
    text = re.sub(r"\$\{([A-Za-z]+)(\.Arn)?\}", lambda m: f"resolved-{m.group(1)}", text)
    assert "${" not in text, text
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def app_metric_names() -> set[str]:
    """Every metric name the app can write (an observation with every fact set)."""
    from chatgate.observability.metrics import metric_values

    observation = RequestObservation(request_id="r", stream=True)
    observation.upstream_started(stream=True)
    observation.upstream_answered("id")
    observation.first_token()
    observation.settled(1, 1)
    observation.failed(502, upstream=True)
    return {name for name, _, _ in metric_values(observation)} | {"ErrorsByClass"}


@pytest.mark.parametrize("mode", list(MODES))
def test_tracing_is_active_on_the_function_and_the_stage(transformed, mode):
    stack = deployed(transformed, mode)
    assert function(stack)["TracingConfig"] == {"Mode": "Active"}
    stage = only(resources_of_type(stack, "AWS::ApiGateway::Stage"))["Properties"]
    assert stage["TracingEnabled"] is True
    fmt = stage["AccessLogSetting"]["Format"]
    assert "$context.xrayTraceId" in fmt and "$context.integration.requestId" in fmt


def test_the_function_may_write_traces(transformed):
    stack = deployed(transformed, "streaming")
    role = stack["Resources"]["ChatCompletionsFunctionRole"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    [xray] = [s for s in statements if any(a.startswith("xray:") for a in s["Action"])]
    assert sorted(xray["Action"]) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]


def test_metrics_settings_reach_the_function(transformed):
    stack = resolve(
        transformed["streaming"]["template"],
        {**MODES["streaming"], "MetricsNamespace": "acme/llm", "MetricsPerWorkspace": "false"},
    )
    env = function(stack)["Environment"]["Variables"]
    assert env["CHATGATE_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    assert env["CHATGATE_METRICS_PER_WORKSPACE"] == {"Ref": "MetricsPerWorkspace"}
    assert parameter_values(stack, {})["MetricsPerWorkspace"] == "true"


def test_the_dashboard_charts_what_the_app_writes_and_the_services_around_it(transformed):
    stack = deployed(transformed, "streaming")
    body = dashboard(stack)
    metrics = [m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]]
    plain = [m for m in metrics if isinstance(m[0], str)]
    searches = " ".join(m[0]["expression"] for m in metrics if isinstance(m[0], dict))
    ours = {m[1] for m in plain if m[0] == "chatgate"}
    # requests, tokens, latency (p50/p99), time to first token, 429s, 5xx, upstream errors
    assert ours >= {"Requests", "InputTokens", "OutputTokens", "Latency", "UpstreamLatency"}
    assert ours >= {"TimeToFirstToken", "RateLimited", "ServerErrors", "UpstreamErrors"}
    assert ours <= app_metric_names()
    for metric in plain:
        if metric[0] == "chatgate":  # the stack-wide series: dimension Region only (metrics.STACK)
            assert metric[2:4] == [STACK[0], "eu"]
    stats = {m[-1].get("stat") for m in plain if m[1] in ("Latency", "TimeToFirstToken")}
    assert {"p50", "p99"} <= stats
    services = {(m[0], m[1]) for m in plain}
    assert ("AWS/Lambda", "ConcurrentExecutions") in services
    assert ("AWS/Lambda", "Throttles") in services
    assert ("AWS/DynamoDB", "WriteThrottleEvents") in services and (
        "AWS/DynamoDB",
        "ReadThrottleEvents",
    ) in services
    assert ("AWS/ApiGateway", "5XXError") in services
    assert '{"chatgate",' + ",".join(PER_MODEL[:3]) + "}" in searches
    assert '{"chatgate",' + ",".join(PER_WORKSPACE) + "}" in searches
    assert "ErrorClass" in searches
    # upstream pools: traffic per resource, failovers and exhausted pools (metrics.PER_RESOURCE, PER_POOL)
    assert '{"chatgate",' + ",".join(PER_RESOURCE) + '} MetricName="ServedRequests"' in searches
    assert '{"chatgate",' + ",".join(PER_POOL) + "}" in searches and "PoolExhausted" in searches
    # the namespace follows the parameter
    assert "acme/llm" in json.dumps(dashboard(stack, {"MetricsNamespace": "acme/llm"}))


@pytest.mark.parametrize("topic", ["", TOPIC])
def test_alarms_and_their_optional_topic(transformed, topic):
    stack = resolve(transformed["streaming"]["template"], {**MODES["streaming"], "AlarmTopicArn": topic})
    alarms = resources_of_type(stack, "AWS::CloudWatch::Alarm")
    assert set(alarms) == ALARMS
    for alarm in alarms.values():
        props = alarm["Properties"]
        if topic:
            assert props["AlarmActions"] == [{"Ref": "AlarmTopicArn"}] == props["OKActions"]
        else:
            assert "AlarmActions" not in props and "OKActions" not in props
        assert props["TreatMissingData"] == "notBreaching"

    server = alarms["ServerErrorRateAlarm"]["Properties"]
    [errors] = [m for m in server["Metrics"] if "MetricStat" in m]
    assert errors["MetricStat"]["Metric"]["MetricName"] == "5XXError"
    assert errors["MetricStat"]["Stat"] == "Average"  # a rate, compared in percent
    assert server["Threshold"] == {"Ref": "AlarmServerErrorRatePercent"}

    upstream = alarms["UpstreamErrorsAlarm"]["Properties"]
    assert upstream["Namespace"] == {"Ref": "MetricsNamespace"}
    assert upstream["MetricName"] == "UpstreamErrors" and "UpstreamErrors" in app_metric_names()
    assert upstream["Dimensions"] == [{"Name": "Region", "Value": {"Ref": "RegionLabel"}}]

    unsettled = alarms["UnsettledWritesAlarm"]["Properties"]
    assert unsettled["MetricName"] == "UnsettledWrites" and "UnsettledWrites" in app_metric_names()
    assert unsettled["Dimensions"] == [{"Name": "Region", "Value": {"Ref": "RegionLabel"}}]
    assert unsettled["Threshold"] == 0 and unsettled["ComparisonOperator"] == "GreaterThanThreshold"
    assert "ledger replay" in json.dumps(unsettled["AlarmDescription"])

    dynamodb = alarms["DynamoDbThrottlesAlarm"]["Properties"]
    tables = {
        json.dumps(m["MetricStat"]["Metric"]["Dimensions"][0]["Value"])
        for m in dynamodb["Metrics"]
        if "MetricStat" in m
    }
    assert tables == {
        json.dumps({"Ref": "DataTable"}),
        json.dumps({"Ref": "RateLimitTable"}),
        json.dumps({"Ref": "ControlTableName"}),
    }

    pools = alarms["UpstreamPoolExhaustedAlarm"]["Properties"]
    assert (pools["MetricName"], pools["Statistic"], pools["Threshold"]) == ("PoolExhausted", "Sum", 1)
    assert [d["Name"] for d in pools["Dimensions"]] == PER_POOL  # the series the metrics line writes
    assert pools["Dimensions"][1]["Value"] == "stack"

    lambda_throttles = alarms["LambdaThrottlesAlarm"]["Properties"]
    assert (lambda_throttles["Namespace"], lambda_throttles["MetricName"]) == ("AWS/Lambda", "Throttles")
    assert lambda_throttles["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": "ChatCompletionsFunction"}}
    ]
