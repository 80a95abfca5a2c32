"""bare_proxy.py's forward (one pooled httpx call upstream, no logic) served by FastAPI instead of plain
Starlette: the proxy lambda_share.py holds to the gateway's CPU share, so both pay FastAPI's import.

BENCH_UPSTREAM=<url> BENCH_UPSTREAM_KEY=<key> python -m uvicorn bare_fastapi_proxy:app --app-dir bench/apps
"""

from bare_proxy import forward
from fastapi import FastAPI

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
app.add_api_route("/", forward, methods=["POST"])
