"""The API's routes, each thin over the pipeline steps it names; served under every prefix.

Plain Starlette routes (`add_route`: the endpoint takes the request, returns a response): FastAPI's
request-parameter solving and response serialisation are not used, and cost about 0.06 ms a request."""

from __future__ import annotations

from fastapi import FastAPI

from chatgate.gateway.routes.chat_completions import chat_completions
from chatgate.gateway.routes.embeddings import create_embeddings
from chatgate.gateway.routes.models import list_models, retrieve_model
from chatgate.gateway.routes.responses import (
    create_response,
    delete_response,
    list_input_items,
    retrieve_response,
)

# `/api/public` serves the same API for dedicated deployments behind one domain.
PREFIXES = ("", "/api/public")


def add_routes(app: FastAPI) -> None:
    for prefix in PREFIXES:
        base = f"{prefix}/openai/{{region}}/v1"
        app.add_route(f"{base}/chat/completions", chat_completions, methods=["POST"])
        app.add_route(f"{base}/responses", create_response, methods=["POST"])
        app.add_route(f"{base}/responses/{{response_id}}", retrieve_response, methods=["GET"])
        app.add_route(f"{base}/responses/{{response_id}}", delete_response, methods=["DELETE"])
        app.add_route(f"{base}/responses/{{response_id}}/input_items", list_input_items, methods=["GET"])
        app.add_route(f"{base}/embeddings", create_embeddings, methods=["POST"])
        app.add_route(f"{base}/models", list_models, methods=["GET"])
        app.add_route(f"{base}/models/{{model}}", retrieve_model, methods=["GET"])
