"""The admin console as deployed: /console reaches the function in both modes, its files are compressed
in both (by the function behind the streaming integration, by API Gateway behind the buffered one), and
no binary media type is needed for that (chatgate.console explains why)."""

from __future__ import annotations

import pytest

from .cfn import parameter_values, sub_text, substitute
from .conftest import MODES
from .test_template import deployed


def rest_api(transformed, mode):
    return deployed(transformed, mode)["Resources"]["ChatCompletionsApi"]["Properties"]


@pytest.mark.parametrize("mode", list(MODES))
def test_console_paths_reach_the_function_and_nothing_is_binary(transformed, mode):
    api = rest_api(transformed, mode)
    # /console, /console/<file> and /api/public/console... all match the one proxy path.
    assert list(api["Body"]["paths"]) == ["/{proxy+}"]
    assert "BinaryMediaTypes" not in api
    assert "x-amazon-apigateway-binary-media-types" not in api["Body"]


def test_compression_is_api_gateways_only_behind_the_buffered_integration(transformed):
    # Streaming: content encoding is not available on a streamed integration response (the function
    # gzips the console's files itself); buffered: API Gateway compresses answers of 1 kB or more.
    assert "MinimumCompressionSize" not in rest_api(transformed, "streaming")
    assert rest_api(transformed, "buffered")["MinimumCompressionSize"] == 1024


def test_outputs_give_the_console_url(template):
    params = parameter_values(template, {"RegionLabel": "eu"})
    url = substitute(sub_text(template["Outputs"]["ConsoleUrl"]["Value"]), params)
    assert url == "https://${ChatCompletionsApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/prod/console"
