"""`chatgate dev`'s upstreams from AZURE_OPENAI_* variables: the API version defaults to Azure's v1 surface,
which serves every allowed model (o3-mini and o4-mini included)."""

from __future__ import annotations

from chatgate.dev.aws import upstreams_from_environment


def test_api_version_defaults_to_v1_and_region_variables_win() -> None:
    found = upstreams_from_environment(
        ("eu", "us"),
        {
            "AZURE_OPENAI_ENDPOINT": "https://shared.openai.azure.com",
            "AZURE_OPENAI_API_KEY": "k",
            "AZURE_OPENAI_ENDPOINT_US": "https://us.openai.azure.com",
            "AZURE_OPENAI_API_VERSION_US": "2025-04-01-preview",
        },
    )
    assert found["eu"] == {"endpoint": "https://shared.openai.azure.com", "api_key": "k", "api_version": "v1"}
    assert found["us"]["endpoint"] == "https://us.openai.azure.com"
    assert found["us"]["api_version"] == "2025-04-01-preview"


def test_nothing_set_means_the_emulator() -> None:
    assert upstreams_from_environment(("eu",), {}) == {}
