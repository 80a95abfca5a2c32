"""Bring-your-own-keys through the official SDK: a workspace with its own Azure OpenAI resource (a separate
emulator with its own key and deployments) is served by it and never by the shared one, with its own model
list and limits; `chatgate workspaces byok set | show | remove` administer it."""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator

import boto3
import httpx
import openai
import pytest

from chatgate.app import create_app
from chatgate.cli import main
from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator
from chatgate.settings import Settings
from chatgate.stores.secrets import SecretsManagerSource
from tests.conftest import Stack
from tests.support.servers import serve

HI = [{"role": "user", "content": "hi"}]
OWN_KEY = "acme-own-azure-key-7f3c9a1e5b"
# The workspace's resource: three deployments, one of a model the stack does not offer.
OWN_DEPLOYMENTS = {
    "prod-gpt4o": "gpt-4o-2024-08-06",
    "prod-mini": "gpt-4o-mini-2024-07-18",
    "acme-ft": "gpt-4o-2024-08-06-ft-acme",
}
DEPLOYMENT_FLAGS = ["gpt-4o=prod-gpt4o", "gpt-4o-mini=prod-mini", "acme-tuned=acme-ft"]


@pytest.fixture(scope="module")
def own_azure() -> Iterator[RunningEmulator]:
    emulator = start_emulator(EmulatorState(api_key=OWN_KEY, name="azure-acme", deployments=OWN_DEPLOYMENTS))
    yield emulator
    emulator.stop()


@pytest.fixture
def own(own_azure: RunningEmulator) -> RunningEmulator:
    own_azure.state.reset()
    return own_azure


def cli(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, str, str]:
    capsys.readouterr()
    saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        code = main(list(argv))
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    return code, out, err


def byok_set(capsys: pytest.CaptureFixture[str], url: str, *deployments: str, key: str = OWN_KEY) -> str:
    argv = ["workspaces", "byok", "set", "--workspace", "acme", "--region", "eu", "--endpoint", url]
    argv += ["--api-key-stdin"]
    for deployment in deployments:
        argv += ["--deployment", deployment]
    code, out, err = cli(capsys, *argv, stdin=key + "\n")
    assert code == 0, err
    return out


def sdk(gateway: str, key: str, region: str = "eu", prefix: str = "") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway}{prefix}/openai/{region}/v1", api_key=key, max_retries=0)


def test_a_byok_workspace_is_served_by_its_own_resource_and_never_the_shared_one(
    gateway: str, stack: Stack, own: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    byok_set(capsys, own.url, *DEPLOYMENT_FLAGS)
    acme = sdk(gateway, stack.create_key("acme"))

    completion = acme.chat.completions.create(model="gpt-4o", messages=HI)
    with acme.chat.completions.create(model="acme-tuned", messages=HI, stream=True) as stream:
        chunks = list(stream)

    assert completion.model == "gpt-4o-2024-08-06"  # what the workspace's deployment runs
    assert chunks[-1].model == "gpt-4o-2024-08-06-ft-acme"
    first, second = own.state.requests
    # Azure's v1 surface (the default): the deployment is named in the body.
    assert first.path == second.path == "/openai/v1/chat/completions"
    assert (first.body["model"], second.body["model"]) == ("prod-gpt4o", "acme-ft")
    assert first.headers["api-key"] == OWN_KEY and "authorization" not in first.headers
    assert stack.upstream("eu").requests == [] and stack.upstream("us").requests == []

    # Other workspaces keep the shared resource, and acme keeps it where it has no own keys (us).
    sdk(gateway, stack.key).chat.completions.create(model="gpt-4o", messages=HI)
    sdk(gateway, stack.create_key("acme"), "us").chat.completions.create(model="gpt-4.1", messages=HI)
    assert len(stack.upstream("eu").requests) == 1 and len(stack.upstream("us").requests) == 1
    assert len(own.state.requests) == 2


def test_its_model_list_is_the_one_it_configured(
    gateway: str, stack: Stack, own: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    byok_set(capsys, own.url, *DEPLOYMENT_FLAGS)
    acme = sdk(gateway, stack.create_key("acme"))

    with pytest.raises(openai.NotFoundError) as caught:  # offered by the stack, not configured by acme
        acme.chat.completions.create(model="gpt-4.1", messages=HI)
    assert caught.value.code == "model_not_found" and "`gpt-4.1`" in caught.value.message
    with pytest.raises(openai.NotFoundError):  # acme's own model is acme's alone
        sdk(gateway, stack.key).chat.completions.create(model="acme-tuned", messages=HI)
    assert own.state.requests == [] and stack.upstream("eu").requests == []

    assert [m.id for m in acme.models.list()] == ["gpt-4o", "gpt-4o-mini", "acme-tuned"]
    assert {m.owned_by for m in acme.models.list()} == {"acme"}
    assert acme.models.retrieve("acme-tuned").id == "acme-tuned"
    with pytest.raises(openai.NotFoundError):
        acme.models.retrieve("gpt-4.1")
    shared = [m.id for m in sdk(gateway, stack.key).models.list()]
    assert shared == list(stack.settings.allowed_models)


def test_its_limits_are_its_own(
    gateway: str, stack: Stack, own: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    byok_set(capsys, own.url, *DEPLOYMENT_FLAGS)
    code, _, _ = cli(
        capsys, "workspaces", "limits", "set", "--workspace", "acme", "--model", "acme-tuned",
        "--rpm", "2", "--tpm", "50000",
    )  # fmt: skip
    assert code == 0
    if time.time() % 60 > 55:  # keep the three requests in one rate-limit window
        time.sleep(60 - time.time() % 60 + 0.1)
    acme = sdk(gateway, stack.create_key("acme"))
    for _ in range(2):
        raw = acme.chat.completions.with_raw_response.create(model="acme-tuned", messages=HI)
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-limit-tokens"] == "50000"
    with pytest.raises(openai.RateLimitError) as caught:
        acme.chat.completions.create(model="acme-tuned", messages=HI)
    assert caught.value.body["type"] == "requests"  # type: ignore[index]
    assert len(own.state.requests) == 2
    # Its other models keep the stack's defaults.
    raw = acme.chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["x-ratelimit-limit-requests"] == str(stack.settings.rpm_limit)


def test_without_deployments_it_gets_the_stacks_models_on_same_named_deployments(
    gateway: str, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    with start_emulator(EmulatorState(api_key=OWN_KEY, name="azure-acme-all")) as own_all:
        out = byok_set(capsys, own_all.url)
        assert "the stack's models" in out and "same name" in out
        acme = sdk(gateway, stack.create_key("acme"))
        assert [m.id for m in acme.models.list()] == list(stack.settings.allowed_models)
        acme.chat.completions.create(model="o4-mini", messages=HI)
        [sent] = own_all.state.requests
        # No --api-version: Azure's v1 surface, which serves every model (reasoning ones included).
        assert sent.path == "/openai/v1/chat/completions" and sent.query == {}
        assert sent.body["model"] == "o4-mini"
    assert stack.upstream("eu").requests == []


def test_a_dated_api_version_can_be_chosen(
    gateway: str, stack: Stack, own: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["workspaces", "byok", "set", "--workspace", "acme", "--region", "eu", "--endpoint", own.url]
    code, out, err = cli(
        capsys,
        *argv,
        "--api-key-stdin",
        "--api-version",
        "2025-01-01-preview",
        "--deployment",
        "gpt-4o=prod-gpt4o",
        stdin=OWN_KEY + "\n",
    )
    assert code == 0, err
    assert "api version: 2025-01-01-preview" in out
    sdk(gateway, stack.create_key("acme")).chat.completions.create(model="gpt-4o", messages=HI)
    [sent] = own.state.requests
    assert sent.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert sent.query == {"api-version": "2025-01-01-preview"}


def test_show_and_remove(
    gateway: str, stack: Stack, own: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "workspaces", "byok", "show", "--workspace", "acme", "--region", "eu")
    assert code == 0 and "no bring-your-own-keys configuration" in out
    byok_set(capsys, own.url, *DEPLOYMENT_FLAGS)
    code, out, _ = cli(capsys, "workspaces", "byok", "show", "--workspace", "acme", "--region", "eu")
    assert code == 0
    assert own.url in out and "chatgate/byok/acme/eu" in out and "never shown" in out
    assert "gpt-4o -> prod-gpt4o" in out and "acme-tuned -> acme-ft" in out
    assert OWN_KEY not in out and OWN_KEY[:12] not in out

    acme = sdk(gateway, stack.create_key("acme"))
    acme.chat.completions.create(model="gpt-4o", messages=HI)
    code, out, _ = cli(capsys, "workspaces", "byok", "remove", "--workspace", "acme", "--region", "eu")
    assert code == 0 and "removed" in out
    acme.chat.completions.create(model="gpt-4o", messages=HI)  # CHATGATE_SECRET_MAX_AGE_SECONDS=0 here
    assert len(own.state.requests) == 1 and len(stack.upstream("eu").requests) == 1
    assert "gpt-4.1" in [m.id for m in acme.models.list()]

    code, _, err = cli(capsys, "workspaces", "byok", "remove", "--workspace", "acme", "--region", "eu")
    assert code == 1 and "no bring-your-own-keys configuration" in err
    byok_set(capsys, own.url, "gpt-4o=prod-gpt4o")  # and back again at once
    acme.chat.completions.create(model="gpt-4o", messages=HI)
    assert len(own.state.requests) == 2


class SecretsClock:
    """The secret cache's clocks (monotonic and wall, chatgate.clock): they move only when the test moves
    them (no machine is too slow for it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_changes_take_effect_within_the_secret_max_age(
    stack: Stack, own: RunningEmulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATGATE_SECRET_MAX_AGE_SECONDS", "1")
    clock = SecretsClock()
    init = SecretsManagerSource.__init__

    def with_clock(self: SecretsManagerSource, client: object, **kwargs: object) -> None:
        init(self, client, **{**kwargs, "clock": clock, "wall_clock": clock})  # type: ignore[arg-type]

    monkeypatch.setattr(SecretsManagerSource, "__init__", with_clock)
    key = stack.create_key("acme")
    with serve(create_app(Settings())) as gateway:
        acme = sdk(gateway, key)
        acme.chat.completions.create(model="gpt-4o", messages=HI)  # caches "acme has no own keys"
        byok_set(capsys, own.url, *DEPLOYMENT_FLAGS)
        clock.now += 0.9  # within the max age (1 s): the warm instance does not ask again
        acme.chat.completions.create(model="gpt-4o", messages=HI)
        assert len(own.state.requests) == 0
        clock.now += 0.2  # past it: the next request reads the secret again and goes to the own resource
        acme.chat.completions.create(model="gpt-4o", messages=HI)
        assert len(own.state.requests) == 1


def test_a_refused_own_key_is_a_502_that_names_the_workspace_and_not_the_key(
    gateway: str, stack: Stack, own: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    byok_set(capsys, own.url, *DEPLOYMENT_FLAGS, key="a-wrong-key-for-this-resource")
    with pytest.raises(openai.InternalServerError) as caught:
        sdk(gateway, stack.create_key("acme")).chat.completions.create(model="gpt-4o", messages=HI)
    assert caught.value.status_code == 502 and caught.value.code == "upstream_error"
    assert "workspace 'acme'" in caught.value.message
    assert "a-wrong-key" not in caught.value.response.text
    assert stack.upstream("eu").requests == []


def test_an_unusable_byok_secret_is_a_502_never_the_shared_resource(gateway: str, stack: Stack) -> None:
    boto3.client("secretsmanager").create_secret(
        Name=stack.settings.byok_secret_name("acme", "eu"), SecretString="not json"
    )
    response = httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o", "messages": HI},
        headers={"authorization": f"Bearer {stack.create_key('acme')}"},
    )
    assert response.status_code == 502
    assert "bring-your-own-keys upstream of workspace 'acme'" in response.json()["error"]["message"]
    assert stack.upstream("eu").requests == []


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["--endpoint", "http://acme.openai.azure.com"], "k", "not an https:// URL"),
        (["--endpoint", "https://acme.openai.azure.com?x=1"], "k", "base URL"),
        (["--endpoint", "https://a.openai.azure.com"], "", "no API key on standard input"),
        (["--endpoint", "https://a.openai.azure.com"], "two words", "single line"),
        (["--endpoint", "https://a.openai.azure.com", "--deployment", "=x"], "k", "MODEL=DEPLOYMENT"),
        (
            ["--endpoint", "https://a.openai.azure.com", "--deployment", "m=a", "--deployment", "m=b"],
            "k",
            "two deployments",
        ),
        (["--endpoint", "https://a.openai.azure.com", "--workspace", "my team"], "k", "cannot have"),
        (["--endpoint", "https://a.openai.azure.com", "--api-version", "latest"], "k", "api_version must be"),
    ],
)
def test_set_refuses_what_cannot_work(
    stack: Stack, capsys: pytest.CaptureFixture[str], argv: list[str], stdin: str, message: str
) -> None:
    base = ["workspaces", "byok", "set", "--workspace", "acme", "--region", "eu", "--api-key-stdin"]
    code, out, err = cli(capsys, *base, *argv, stdin=stdin)
    assert code == 2 and message in err and out == ""
    secrets = boto3.client("secretsmanager").list_secrets()["SecretList"]
    assert [s["Name"] for s in secrets if "/byok/" in s["Name"]] == []


@pytest.mark.parametrize(
    "given", [["--api-key", OWN_KEY], [f"--api-key={OWN_KEY}"], ["--api-key-stdin", "--api-key", OWN_KEY], []]
)
def test_the_key_is_never_an_argument(
    stack: Stack, capsys: pytest.CaptureFixture[str], given: list[str]
) -> None:
    base = ["workspaces", "byok", "set", "--workspace", "acme", "--region", "eu"]
    code, out, err = cli(capsys, *base, "--endpoint", "https://a.openai.azure.com", *given, stdin=OWN_KEY)
    assert code == 2 and "--api-key-stdin" in err
    assert OWN_KEY not in out + err  # refused without echoing it
