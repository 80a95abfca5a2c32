"""Settings read the environment (CHATGATE_<FIELD> or a field's alias); keyword arguments win."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chatgate.settings import Settings


def test_fields_read_their_variables_and_keyword_arguments_win(monkeypatch):
    monkeypatch.setenv("CHATGATE_RPM_LIMIT", "7")
    monkeypatch.setenv("CHATGATE_TPM_LIMIT", "900")
    monkeypatch.setenv("CHATGATE_METRICS_ENABLED", "false")

    settings = Settings(tpm_limit=1000)

    assert (settings.rpm_limit, settings.tpm_limit, settings.metrics_enabled) == (7, 1000, False)


def test_aliased_fields_read_their_alias(monkeypatch):
    monkeypatch.setenv("CHATGATE_MODELS", "gpt-4o, gpt-4o-mini,gpt-4o")
    monkeypatch.setenv("CHATGATE_REGIONS", "eu")

    settings = Settings()

    assert settings.models == ("gpt-4o", "gpt-4o-mini")
    assert settings.regions == ("eu",)
    assert Settings(CHATGATE_REGIONS="us").regions == ("us",)  # type: ignore[call-arg]


def test_embedding_models_are_a_list_of_their_own_in_the_allowlist(monkeypatch):
    monkeypatch.setenv("CHATGATE_MODELS", "gpt-4o")
    embeddings = ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")
    assert Settings().allowed_models == ("gpt-4o", *embeddings)  # narrowing the chat models keeps them
    monkeypatch.setenv("CHATGATE_EMBEDDING_MODELS", "")
    assert Settings().embedding_models == () and Settings().allowed_models == ("gpt-4o",)
    monkeypatch.setenv("CHATGATE_EMBEDDING_MODELS", "my-embedder,gpt-4o")
    assert Settings().allowed_models == ("gpt-4o", "my-embedder")


def test_variable_names_match_whatever_their_case(monkeypatch):
    monkeypatch.delenv("CHATGATE_LOG_LEVEL", raising=False)
    monkeypatch.setenv("chatgate_log_level", "DEBUG")
    assert Settings().log_level == "DEBUG"


def test_unset_variables_keep_the_contracts_defaults(monkeypatch):
    for name in Settings.environment_variables():
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.rpm_limit, settings.tpm_limit, settings.default_completion_reserve) == (
        500,
        60_000,
        1024,
    )
    assert settings.byok_endpoint_suffixes_csv is None


def test_a_bad_value_in_the_environment_is_refused_with_its_name(monkeypatch):
    monkeypatch.setenv("CHATGATE_RPM_LIMIT", "-1")
    with pytest.raises(ValidationError, match="rpm_limit"):
        Settings()


def test_settings_are_frozen():
    with pytest.raises(ValidationError):
        Settings().rpm_limit = 1  # type: ignore[misc]
