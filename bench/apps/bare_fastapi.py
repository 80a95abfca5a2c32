"""The cold-start baseline: a bare FastAPI app answering a canned chat completion (no AWS, no upstream).

python -m uvicorn bare_fastapi:app --app-dir bench/apps
"""

from typing import Any

from fastapi import FastAPI, Request

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

REPLY = {
    "id": "chatcmpl-bare",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


@app.post("/openai/{region}/v1/chat/completions")
async def chat_completions(region: str, request: Request) -> dict[str, Any]:
    await request.json()
    return REPLY
