"""No secret in any log line or command output: Azure keys (the stack's and bring-your-own-keys ones) and
workspace API keys, through a whole session of administration and traffic, successes and failures, with
every logger at DEBUG and both Python-level and file-descriptor-level output captured."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import httpx
import openai
import pytest

from chatgate.cli import main
from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator
from tests.conftest import EMULATOR_KEYS, Stack
from tests.support.emf import emf_records

OWN_KEY = "acme-own-azure-key-3b8e51f0c2d94a17"
WRONG_KEY = "globex-stale-azure-key-9d02e6a4b1"
API_SET_KEY = "acme-us-azure-key-set-over-http-51c2"
HI = [{"role": "user", "content": "hi"}]
FAIL = [{"role": "user", "content": "[[server_error]] hi"}]
PROMPT = "Tell me about the zebra-quartz-7f3a project in one paragraph."


@pytest.fixture
def own_azure() -> Iterator[RunningEmulator]:
    with start_emulator(EmulatorState(api_key=OWN_KEY, name="azure-acme")) as emulator:
        yield emulator


def run(argv: list[str], stdin: str = "") -> int:
    saved, sys.stdin = sys.stdin, io.StringIO(stdin)
    try:
        return main(argv)
    finally:
        sys.stdin = saved


def test_no_secret_reaches_a_log_line_or_the_cli_output(
    gateway: str,
    stack: Stack,
    own_azure: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="chatgate")
    capfd.readouterr()

    # A key is printed once, alone on stdout, at creation: the only place it may ever appear.
    assert run(["keys", "create", "--workspace", "acme", "--name", "ci"]) == 0
    created = capfd.readouterr()
    [acme_key] = created.out.splitlines()
    assert acme_key not in created.err
    caplog.clear()

    # Administration.
    byok = ["workspaces", "byok", "set", "--region", "eu", "--api-key-stdin"]
    assert run([*byok, "--workspace", "acme", "--endpoint", own_azure.url], stdin=OWN_KEY + "\n") == 0
    assert run([*byok, "--workspace", "globex", "--endpoint", own_azure.url], stdin=WRONG_KEY) == 0
    refused = [*byok[:3], "--workspace", "acme", "--region", "eu", "--endpoint", own_azure.url]
    assert run([*refused, "--api-key", OWN_KEY]) == 2  # refused without echoing it
    assert run(["workspaces", "byok", "show", "--workspace", "acme", "--region", "eu"]) == 0
    limits = ["workspaces", "limits", "set", "--workspace", "acme", "--model", "*"]
    assert run([*limits, "--rpm", "50", "--tpm", "90000"]) == 0
    globex_key = stack.create_key("globex")

    # Traffic: own resource, shared resource, streams, refusals, bad keys, the Azure key refused.
    acme = openai.OpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=acme_key, max_retries=0)
    answer = acme.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
    completion = answer.choices[0].message.content or ""
    with acme.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": PROMPT}], stream=True
    ) as stream:
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert [m.id for m in acme.models.list()]
    shared = openai.OpenAI(base_url=f"{gateway}/openai/us/v1", api_key=acme_key, max_retries=0)
    shared.chat.completions.create(model="gpt-4o", messages=HI)
    with pytest.raises(openai.InternalServerError):
        acme.chat.completions.create(model="gpt-4o", messages=FAIL)
    globex = openai.OpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=globex_key, max_retries=0)
    with pytest.raises(openai.InternalServerError):  # globex's Azure key is refused by its resource
        globex.chat.completions.create(model="gpt-4o", messages=HI)
    tampered = acme_key[:-6] + "xxxxxx"
    for bad in (tampered, acme_key + "0", f"Basic {acme_key}"):
        header = bad if bad.startswith("Basic") else f"Bearer {bad}"
        response = httpx.get(f"{gateway}/openai/eu/v1/models", headers={"authorization": header})
        assert response.status_code == 401
        assert acme_key.split("_", 2)[2] not in response.text  # the error names a masked key only

    # The admin API: an admin key (printed once by the CLI), calls that succeed and fail, a key created and
    # a bring-your-own-keys resource set over HTTP.
    earlier = capfd.readouterr()  # the traffic's metrics lines so far, kept for the final check
    assert run(["admin-keys", "create"]) == 0
    created = capfd.readouterr()
    [admin_key] = created.out.splitlines()  # alone on stdout
    assert admin_key not in created.err
    admin = httpx.Client(
        base_url=f"{gateway}/v1/organization", headers={"authorization": f"Bearer {admin_key}"}
    )
    account = admin.post("/projects/acme/service_accounts", json={"name": "api key"}).json()
    api_key = account["api_key"]["value"]
    set_own = {"endpoint": own_azure.url, "api_key": API_SET_KEY}
    assert admin.post("/projects/acme/byok/us", json=set_own).status_code == 200
    assert admin.get("/projects/acme/byok").status_code == 200
    assert admin.delete("/projects/acme/byok/us").status_code == 200
    for header in (f"Bearer {admin_key}x", f"Bearer {api_key}", f"Bearer {admin_key[:-4]}"):
        assert (
            httpx.get(f"{gateway}/v1/organization/me", headers={"authorization": header}).status_code == 401
        )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gateway}/openai/eu/v1", api_key=admin_key, max_retries=0).models.list()

    # Reading it all back.
    assert run(["keys", "list", "--workspace", "acme"]) == 0
    assert run(["keys", "list", "--workspace", "acme", "--json"]) == 0
    assert run(["usage", "--workspace", "acme", "--json"]) == 0
    assert run(["workspaces", "byok", "remove", "--workspace", "globex", "--region", "eu"]) == 0

    captured = capfd.readouterr()
    seen = "\n".join(
        [
            earlier.out,
            earlier.err,
            captured.out,
            captured.err,
            caplog.text,
            *(r.getMessage() for r in caplog.records),
        ]
    )
    assert "chatgate/byok/acme/eu" in seen and "gpt-4o" in seen  # the session did produce output
    # ...metrics lines included (one per request; the stream's may trail its [DONE], so all but one)
    assert len(emf_records(earlier.out + captured.out)) >= 8  # 9 model requests (and the admin calls)
    for what, text in {
        "a prompt": PROMPT,
        "a completion": completion,
        "a streamed completion": streamed,
    }.items():
        assert len(text) > 20 and text not in seen, f"{what} appears in a log or metrics line"
    assert any(r.name.startswith("chatgate") for r in caplog.records)  # and logs
    secrets = {
        "acme's Azure key": OWN_KEY,
        "globex's Azure key": WRONG_KEY,
        "the stack's eu Azure key": EMULATOR_KEYS["eu"],
        "the stack's us Azure key": EMULATOR_KEYS["us"],
        "acme's API key": acme_key,
        "acme's API key secret": acme_key.split("_", 2)[2],
        "globex's API key secret": globex_key.split("_", 2)[2],
        "the events key secret": stack.key.split("_", 2)[2],
        "the admin key secret": admin_key.split("_", 2)[2],
        "a key created through the admin API": api_key.split("_", 2)[2],
        "an Azure key set through the admin API": API_SET_KEY,
    }
    for what, secret in secrets.items():
        assert secret not in seen, f"{what} appears in a log line or the CLI output"
