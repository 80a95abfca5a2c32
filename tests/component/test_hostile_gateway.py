"""A hostile Azure OpenAI through the gateway: what reaches a client when the upstream misbehaves on the
shared connection pool, when a workspace's stored key would smuggle a header, when the upstream floods
headers, and when the upstream dropped pooled connections while the gateway was frozen (SIGSTOP). The
transport-level classes are in test_hostile_upstream.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import boto3
import httpx
import pytest

from chatgate.app import create_app
from tests.conftest import Stack
from tests.support.contract import assert_error_shape
from tests.support.hostile import HostileAzure, completion, gateway_process, peak_rss_mb, reset
from tests.support.servers import serve

# The start of another answer, with workspace acme's words in it (the rest never comes).
PHANTOM = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n"
    b'{"choices":[{"message":{"content":"acme-secret: the merger closes on Friday'
)


def ask(gateway: str, key: str, text: str, **extra: object) -> httpx.Response:
    return httpx.post(
        f"{gateway}/openai/eu/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


def words(request: bytes) -> str:
    return str(json.loads(request.split(b"\r\n\r\n", 1)[1])["messages"][0]["content"])


@pytest.mark.parametrize("how", ["past-content-length", "while-idle"])
def test_the_second_workspace_never_sees_a_byte_of_the_firsts_answer(stack: Stack, how: str) -> None:
    async def azure_handler(
        azure: HostileAzure, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            text = words(await azure.request(reader))
            if len(azure.requests) > 1:
                writer.write(completion(f"answer to {text}"))
            elif how == "past-content-length":
                writer.write(completion("acme's answer") + PHANTOM)
            else:
                writer.write(completion("acme's answer"))
                await writer.drain()
                await asyncio.sleep(0.1)  # the gateway relays it and pools the connection
                writer.write(PHANTOM)  # then the rest of somebody's answer arrives

    with HostileAzure(azure_handler) as azure, serve(create_app(stack.settings)) as gateway:
        stack.put_upstream("eu", azure.secret())
        acme, beta = stack.create_key("acme"), stack.create_key("beta")
        first = ask(gateway, acme, "hello from acme")
        assert first.status_code == 200, first.text
        assert first.json()["choices"][0]["message"]["content"] == "acme's answer"
        assert azure.closed_by_client.wait(5)  # the gateway retired the connection that spoke out of turn
        second = ask(gateway, beta, "hello from beta")
        assert second.status_code == 200, second.text
        assert second.json()["choices"][0]["message"]["content"] == "answer to hello from beta"
        assert "acme" not in second.text
        assert azure.connections == 2


async def never_asked(
    azure: HostileAzure, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await azure.request(reader)
    writer.write(completion("should never be asked"))


@pytest.mark.parametrize("stream", [False, True])
def test_a_byok_key_with_a_line_break_is_refused_before_anything_is_reserved_or_sent(
    stack: Stack, gateway: str, stream: bool
) -> None:
    with HostileAzure(never_asked) as azure:
        value = {**azure.secret("acme-own-key\r\nx-smuggled: 1"), "deployments": {"gpt-4o-mini": "mini"}}
        boto3.client("secretsmanager").create_secret(
            Name=stack.settings.byok_secret_name("acme", "eu"), SecretString=json.dumps(value)
        )
        response = ask(gateway, stack.create_key("acme"), "hi", stream=stream)
        assert response.status_code == 502, response.text
        error = assert_error_shape(response)
        assert error["code"] == "byok_api_key_not_allowed"
        assert "workspace 'acme'" in error["message"] and "acme-own-key" not in response.text
        assert "x-ratelimit-remaining-tokens" not in response.headers  # refused before admission
        assert azure.connections == 0
        assert stack.upstream("eu").requests == []  # and never the shared resource instead


def test_a_stack_key_with_a_line_break_is_never_sent(stack: Stack, gateway: str) -> None:
    with HostileAzure(never_asked) as azure:
        stack.put_upstream("eu", azure.secret("azure-key\r\nGET /smuggled HTTP/1.1"))
        response = ask(gateway, stack.key, "hi")
        assert response.status_code == 502, response.text
        assert assert_error_shape(response)["code"] == "upstream_request_refused"
        assert azure.connections == 0


@pytest.fixture
def short_upstream_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATGATE_UPSTREAM_TIMEOUT_SECONDS", "5")


@pytest.mark.usefixtures("short_upstream_timeout")
def test_an_upstream_that_floods_headers_is_a_502_and_the_gateways_memory_stays_bounded(stack: Stack) -> None:
    flooded = 0
    line = b"x-flood: " + b"a" * 4000 + b"\r\n"

    async def azure_handler(
        azure: HostileAzure, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal flooded
        while True:
            await azure.request(reader)
            if len(azure.requests) == 1:  # the first call warms the gateway up
                writer.write(completion("warm"))
                continue
            writer.write(b"HTTP/1.1 200 OK\r\n")
            while flooded < 256 * 1024 * 1024:  # bounded: 256 MiB of headers, or until the gateway hangs up
                writer.write(line * 16)
                flooded += len(line) * 16
                await writer.drain()
            await reader.read()

    with HostileAzure(azure_handler) as azure:
        stack.put_upstream("eu", azure.secret())
        with gateway_process() as (gateway, process):
            assert ask(gateway, stack.key, "warm up").status_code == 200
            before = peak_rss_mb(process.pid)
            response = ask(gateway, stack.key, "hi")
            after = peak_rss_mb(process.pid)
    assert response.status_code == 502, response.text
    assert assert_error_shape(response)["type"] == "server_error"
    assert after - before < 16, (before, after)
    assert flooded < 64 * 1024 * 1024  # the gateway hung up after its 64 KiB (the rest sat in socket buffers)


@pytest.mark.parametrize("dropped", ["forgotten", "closed"])
def test_connections_the_upstream_dropped_while_the_gateway_was_frozen_do_not_fail_the_next_request(
    stack: Stack, dropped: str
) -> None:
    writers: list[asyncio.StreamWriter] = []
    forgotten: set[asyncio.StreamWriter] = set()

    async def azure_handler(
        azure: HostileAzure, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writers.append(writer)
        while True:
            text = words(await azure.request(reader))
            if writer in forgotten:  # a load balancer that dropped the idle connection answers with a reset
                reset(writer)
                return
            writer.write(completion(f"answer to {text}"))

    async def drop_idle() -> None:
        for writer in writers:
            if dropped == "forgotten":
                forgotten.add(writer)
            else:
                writer.close()  # FIN, seen by the gateway only once it runs again

    with HostileAzure(azure_handler) as azure:
        stack.put_upstream("eu", azure.secret())
        with gateway_process() as (gateway, process):
            assert ask(gateway, stack.key, "before").status_code == 200
            os.kill(process.pid, signal.SIGSTOP)
            try:
                azure.call(drop_idle())
            finally:
                os.kill(process.pid, signal.SIGCONT)
            response = ask(gateway, stack.key, "after the freeze")
            assert response.status_code == 200, response.text
            assert response.json()["choices"][0]["message"]["content"] == "answer to after the freeze"
        assert azure.connections == 2
        assert [words(request) for request in azure.requests][-1] == "after the freeze"
