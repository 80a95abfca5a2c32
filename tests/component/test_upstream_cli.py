"""`chatgate upstream add | list | remove` and `chatgate workspaces byok add | list | remove --name`: pools
administered from the command line, keys from standard input only, and the gateway following the change."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from chatgate.app import create_app
from chatgate.dev.azure_emulator import EmulatorState, RunningEmulator, start_emulator
from tests.component.test_byok import cli
from tests.conftest import Stack
from tests.support.servers import serve

FRANCE_KEY = "france-key-4c1d9e"


@pytest.fixture(scope="module")
def france() -> Iterator[RunningEmulator]:
    emulator = start_emulator(EmulatorState(api_key=FRANCE_KEY, name="azure-eu-france"))
    yield emulator
    emulator.stop()


def ask(url: str, key: str) -> str:
    response = httpx.post(
        f"{url}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def test_the_stack_s_pool_grows_and_shrinks_from_the_command_line(
    stack: Stack, france: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    france.state.reset()
    add = ["upstream", "add", "--region", "eu", "--name", "france", "--endpoint", france.url]
    code, out, err = cli(capsys, *add, "--priority", "2", "--api-key-stdin", stdin=FRANCE_KEY + "\n")
    assert code == 0, err
    assert "default" in out and "france" in out and FRANCE_KEY not in out + err

    stack.upstream("eu").fail_status = 429  # the region's first resource is throttled: France answers
    with serve(create_app(stack.settings)) as url:
        assert "azure-eu-france" in ask(url, stack.key)

    code, out, _ = cli(capsys, "upstream", "remove", "--region", "eu", "--name", "default")
    assert code == 0 and "default" not in out.split("\n", 1)[1]
    code, _, err = cli(capsys, "upstream", "remove", "--region", "eu", "--name", "france")
    assert code == 1 and "last resource" in err
    code, out, _ = cli(capsys, "upstream", "list", "--region", "eu")
    assert code == 0 and "france" in out and "1 resource(s)" in out

    # Keys never come from the command line, and bad values are refused before anything is stored.
    code, _, err = cli(capsys, *add, "--api-key", "oops")
    assert code == 2 and "oops" not in err
    code, _, err = cli(capsys, *add[:5], "bad name", *add[6:], "--api-key-stdin", stdin="k\n")
    assert code == 2 and "resource name" in err
    code, _, err = cli(capsys, *add, "--weight", "0", "--api-key-stdin", stdin="k\n")
    assert code == 2 and "weight" in err


def test_a_workspace_s_own_pool_from_the_command_line(
    stack: Stack, france: RunningEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    france.state.reset()
    where = ["--workspace", "acme", "--region", "eu"]
    for name, url, key in (
        ("sweden", stack.emulators["eu"].url, "azure-key-eu"),
        ("france", france.url, FRANCE_KEY),
    ):
        code, _, err = cli(
            capsys,
            "workspaces",
            "byok",
            "add",
            *where,
            "--name",
            name,
            "--endpoint",
            url,
            "--api-key-stdin",
            stdin=key,
        )
        assert code == 0, err
    code, out, _ = cli(capsys, "workspaces", "byok", "list", *where)
    assert code == 0 and "sweden" in out and "france" in out and FRANCE_KEY not in out

    stack.upstream("eu").fail_status = 500
    with serve(create_app(stack.settings)) as url:
        assert "azure-eu-france" in ask(url, stack.create_key("acme"))

    code, out, _ = cli(capsys, "workspaces", "byok", "remove", *where, "--name", "sweden")
    assert code == 0 and "sweden" not in out
    code, out, _ = cli(capsys, "workspaces", "byok", "remove", *where)
    assert code == 0 and "removed" in out
