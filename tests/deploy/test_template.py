"""template.yaml, as the SAM translator transforms it and CloudFormation would deploy it.

Each test takes the translator's real output (conftest.transformed), resolves the stack's Conditions for one
set of parameters (cfn.resolve, as CloudFormation does at deploy time) and checks what a deployment would
get: the streaming or buffered integration, the handler and environment, IAM scoped to the stack's own
resources, the tables' settings, logs, outputs.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from chatgate.settings import Settings

from .cfn import parameter_values, resolve, resources_of_type, sub_text, substitute
from .conftest import MODES

LWA_LAYER = "arn:${AWS::Partition}:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:27"
STREAMING_URI = (
    "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2021-11-15/functions/"
    "${ChatCompletionsFunction.Arn}/response-streaming-invocations"
)
BUFFERED_URI = (
    "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
    "${ChatCompletionsFunction.Arn}/invocations"
)
MANGUM_HANDLER = "chatgate.lambda_handler.handler"


def deployed(transformed: dict[str, dict[str, Any]], mode: str) -> dict[str, Any]:
    """The transformed template for one of conftest.MODES, Conditions resolved."""
    result = transformed[mode]
    assert "template" in result, result.get("error")
    return resolve(result["template"], MODES[mode])


def only(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources.values()))


def integration(stack: dict[str, Any]) -> dict[str, Any]:
    api = only(resources_of_type(stack, "AWS::ApiGateway::RestApi"))
    method = api["Properties"]["Body"]["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"]
    return method["x-amazon-apigateway-integration"]


def function(stack: dict[str, Any]) -> dict[str, Any]:
    return stack["Resources"]["ChatCompletionsFunction"]["Properties"]


# --- streaming: Lambda Web Adapter + the response-streaming integration ---------------------------


def test_streaming_integration_invokes_lambda_with_response_streaming(transformed):
    stack = deployed(transformed, "streaming")

    spec = integration(stack)

    assert spec["type"] == "aws_proxy"
    assert spec["httpMethod"] == "POST"
    assert sub_text(spec["uri"]) == STREAMING_URI
    assert spec["responseTransferMode"] == "STREAM"
    assert spec["timeoutInMillis"] == 900000


def test_streaming_integration_is_the_one_sam_generates_for_a_streaming_event(transformed):
    """Same fields and values as SAM's own output for `ResponseTransferMode: RESPONSE_STREAM`."""
    probe = transformed["literal_event"]["template"]
    generated = integration(resolve(probe))
    ours = integration(deployed(transformed, "streaming"))

    # SAM writes the partition and the function's logical id literally; ours uses ${AWS::Partition}.
    sam_uri = sub_text(generated["uri"]).replace("arn:aws:", "arn:${AWS::Partition}:")
    assert sam_uri.replace("${Fn.Arn}", "${ChatCompletionsFunction.Arn}") == sub_text(ours["uri"])
    for field in ("type", "httpMethod", "responseTransferMode", "timeoutInMillis"):
        assert ours[field] == generated[field], field


def test_streaming_function_runs_the_asgi_app_under_lambda_web_adapter(transformed):
    props = function(deployed(transformed, "streaming"))
    env = props["Environment"]["Variables"]

    assert props["Handler"] == "run.sh"
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["arm64"]
    assert {"Fn::Sub": LWA_LAYER} in props["Layers"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["AWS_LWA_PORT"] == "8080"
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/healthz"
    # The function may run as long as the streaming integration waits for it.
    assert props["Timeout"] * 1000 >= integration(deployed(transformed, "streaming"))["timeoutInMillis"]


# --- buffered: Mangum + the ordinary integration --------------------------------------------------


def test_buffered_mode_uses_the_ordinary_integration(transformed):
    spec = integration(deployed(transformed, "buffered"))

    assert sub_text(spec["uri"]) == BUFFERED_URI
    assert spec["responseTransferMode"] == "BUFFERED"
    # API Gateway's buffered limit without a quota increase.
    assert spec["timeoutInMillis"] == 29000


def test_buffered_mode_uses_the_mangum_handler_without_the_adapter(transformed):
    props = function(deployed(transformed, "buffered"))
    env = props["Environment"]["Variables"]

    assert props["Handler"] == MANGUM_HANDLER
    assert {"Fn::Sub": LWA_LAYER} not in props["Layers"]
    # SAM names layer versions DependenciesLayer<hash>.
    (layer,) = props["Layers"]
    assert layer["Ref"].startswith("DependenciesLayer")
    assert not [name for name in env if name.startswith("AWS_LWA_") or name == "AWS_LAMBDA_EXEC_WRAPPER"]
    assert props["Timeout"] <= 30


def test_both_modes_keep_one_function_and_one_api(transformed):
    """Switching Streaming updates the same function and API in place (same URL, same function)."""
    for mode in ("streaming", "buffered"):
        stack = deployed(transformed, mode)
        assert list(resources_of_type(stack, "AWS::Lambda::Function")) == ["ChatCompletionsFunction"]
        assert list(resources_of_type(stack, "AWS::ApiGateway::RestApi")) == ["ChatCompletionsApi"]


def test_the_api_redeploys_on_every_stack_update(template):
    """The integration switches through Fn::If, which SAM's deployment hash cannot see."""
    assert template["Resources"]["ChatCompletionsApi"]["Properties"]["AlwaysDeploy"] is True


def test_handlers_named_in_the_template_exist():
    import importlib

    asgi = importlib.import_module("chatgate.asgi")
    lambda_handler = importlib.import_module("chatgate.lambda_handler")

    assert callable(asgi.app)
    assert callable(lambda_handler.handler)


# --- why the integration is not the function's `Api` event (documented in template.yaml) ----------


@pytest.mark.parametrize("probe", ["if_event", "ref_event"])
def test_sam_silently_buffers_an_intrinsic_response_transfer_mode(transformed, probe):
    """An !If or !Ref in the event's ResponseTransferMode gives the buffered integration even when true."""
    generated = integration(resolve(transformed[probe]["template"]))

    assert sub_text(generated["uri"]).endswith("/2015-03-31/functions/${Fn.Arn}/invocations")
    assert "responseTransferMode" not in generated


def test_sam_rejects_two_conditional_functions_on_the_same_api_path(transformed):
    assert "defined multiple times" in transformed["two_conditional_functions"]["error"]


# --- the API --------------------------------------------------------------------------------------


def test_api_is_regional_throttled_and_writes_access_logs(transformed):
    stack = deployed(transformed, "streaming")
    api = stack["Resources"]["ChatCompletionsApi"]["Properties"]
    stage = only(resources_of_type(stack, "AWS::ApiGateway::Stage"))["Properties"]

    # Streaming idles out after 30 s on edge-optimized endpoints, 5 minutes on regional ones.
    assert api["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    (settings,) = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert settings["DataTraceEnabled"] is False  # never log request or response bodies
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "$context.requestId" in stage["AccessLogSetting"]["Format"]


def test_every_path_reaches_the_function(transformed):
    api = deployed(transformed, "streaming")["Resources"]["ChatCompletionsApi"]["Properties"]
    assert list(api["Body"]["paths"]) == ["/{proxy+}"]


def test_api_gateway_may_invoke_the_function_from_this_api_stage_only(transformed):
    stack = deployed(transformed, "streaming")
    permissions = resources_of_type(stack, "AWS::Lambda::Permission")

    (permission,) = permissions.values()
    props = permission["Properties"]
    assert props["Principal"] == "apigateway.amazonaws.com"
    assert props["FunctionName"] == {"Fn::GetAtt": ["ChatCompletionsFunction", "Arn"]}
    assert sub_text(props["SourceArn"]).endswith(":${ChatCompletionsApi}/${StageName}/*/*")


@pytest.mark.parametrize(("mode", "managed"), [("streaming", True), ("us_unmanaged_account", False)])
def test_api_gateway_account_role_is_optional(transformed, mode, managed):
    stack = deployed(transformed, mode)

    assert ("ApiGatewayAccount" in stack["Resources"]) is managed
    # The API waits for the account settings through a resource that always exists.
    assert stack["Resources"]["ChatCompletionsApi"]["DependsOn"] == "ApiGatewayAccountSettings"
    assert "ApiGatewayAccountSettings" in stack["Resources"]


# --- data -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["DataTable", "RateLimitTable"])
def test_tables_are_on_demand_with_ttl_recovery_and_encryption(transformed, table):
    props = deployed(transformed, "streaming")["Resources"][table]["Properties"]

    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}


def test_data_table_outlives_the_stack(transformed):
    table = deployed(transformed, "streaming")["Resources"]["DataTable"]

    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    assert table["Properties"]["DeletionProtectionEnabled"] is True


@pytest.mark.parametrize("label", ["eu", "us"])
def test_upstream_secret_is_created_empty_under_the_name_the_app_reads(template, label):
    secret = template["Resources"]["UpstreamSecret"]["Properties"]
    params = parameter_values(template, {"RegionLabel": label})

    assert "SecretString" not in secret
    assert "GenerateSecretString" not in secret
    expected = Settings(secret_prefix=params["SecretPrefix"]).upstream_secret_name(label)
    assert substitute(sub_text(secret["Name"]), params) == expected


# --- the function's configuration -----------------------------------------------------------------


REQUIRED_ENV = {
    "CHATGATE_REGIONS": {"Ref": "RegionLabel"},
    "CHATGATE_MODELS": {"Ref": "AllowedModels"},
    "CHATGATE_EMBEDDING_MODELS": {"Ref": "AllowedEmbeddingModels"},
    "CHATGATE_RPM_LIMIT": {"Ref": "RpmLimit"},
    "CHATGATE_TPM_LIMIT": {"Ref": "TpmLimit"},
    "CHATGATE_RATE_WINDOW_SECONDS": {"Ref": "RateWindowSeconds"},
    "CHATGATE_TABLE_NAME": {"Ref": "DataTable"},
    "CHATGATE_RATE_LIMIT_TABLE_NAME": {"Ref": "RateLimitTable"},
    "CHATGATE_SECRET_PREFIX": {"Ref": "SecretPrefix"},
    "CHATGATE_LOG_LEVEL": {"Ref": "LogLevel"},
    "POWERTOOLS_SERVICE_NAME": "chatgate",
}


@pytest.mark.parametrize("mode", ["streaming", "buffered"])
def test_function_environment_configures_the_app(transformed, mode):
    env = function(deployed(transformed, mode))["Environment"]["Variables"]

    assert {name: env.get(name) for name in REQUIRED_ENV} == REQUIRED_ENV


def test_every_chatgate_variable_is_a_setting_the_app_reads(template):
    """A misspelt CHATGATE_* name would be ignored silently by the app; catch it here."""
    env = template["Resources"]["ChatCompletionsFunction"]["Properties"]["Environment"]["Variables"]
    known = Settings.environment_variables()
    unknown = [name for name in env if name.startswith("CHATGATE_") and name not in known]
    assert not unknown


def test_no_key_in_the_environment_or_parameter_defaults(template):
    env = template["Resources"]["ChatCompletionsFunction"]["Properties"]["Environment"]["Variables"]
    assert not [name for name in env if name.startswith("AZURE_") or "API_KEY" in name]
    for name, spec in template["Parameters"].items():
        assert "key" not in name.lower() or "Default" not in spec, name


def test_default_parameters_match_the_contract(template):
    params = parameter_values(template)
    defaults = Settings()

    assert params["AllowedModels"].split(",") == list(defaults.models)
    assert params["AllowedEmbeddingModels"].split(",") == list(defaults.embedding_models)
    assert int(params["RpmLimit"]) == defaults.rpm_limit
    assert int(params["TpmLimit"]) == defaults.tpm_limit
    assert int(params["RateWindowSeconds"]) == defaults.rate_window_seconds
    assert template["Parameters"]["RegionLabel"]["AllowedValues"] == ["eu", "us"]
    assert template["Parameters"]["Streaming"]["AllowedValues"] == ["true", "false"]


# --- logs and outputs -----------------------------------------------------------------------------


def test_logs_have_retention_and_the_function_writes_to_its_own_group(transformed):
    stack = deployed(transformed, "streaming")
    groups = resources_of_type(stack, "AWS::Logs::LogGroup")

    assert set(groups) == {"FunctionLogGroup", "ApiAccessLogGroup"}
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert function(stack)["LoggingConfig"] == {"LogGroup": {"Ref": "FunctionLogGroup"}}


@pytest.mark.parametrize("label", ["eu", "us"])
def test_outputs_give_the_openai_base_url(template, label):
    outputs = template["Outputs"]
    params = parameter_values(template, {"RegionLabel": label})

    url = substitute(sub_text(outputs["ApiEndpoint"]["Value"]), params)
    public = substitute(sub_text(outputs["ApiPublicEndpoint"]["Value"]), params)

    base = "https://${ChatCompletionsApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/prod"
    assert url == f"{base}/openai/{label}/v1"
    assert public == f"{base}/api/public/openai/{label}/v1"
    assert outputs["DataTableName"]["Value"] == {"Ref": "DataTable"}


# --- checkov skips --------------------------------------------------------------------------------


def test_every_checkov_skip_gives_its_reason(template):
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]

    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
        assert len(skip.get("comment", "").split()) >= 8, (name, skip)
