#!/bin/sh
# Streaming mode entry point (template.yaml: Handler run.sh, AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap).
#
# Lambda Web Adapter (the LambdaAdapterLayerArm64 layer, /opt/bootstrap) starts this script, waits until
# GET $AWS_LWA_READINESS_CHECK_PATH (/healthz) answers, then turns each API Gateway event into an HTTP
# request to 127.0.0.1:$AWS_LWA_PORT and streams the response back (AWS_LWA_INVOKE_MODE=response_stream).
#
# The Python runtime's own bootstrap puts /opt/python (the dependency layer) on sys.path, but this script
# replaces that bootstrap: PYTHONPATH is only $LAMBDA_RUNTIME_DIR here, so add the function code and the
# layer explicitly.
set -eu

export PYTHONPATH="${LAMBDA_TASK_ROOT:-.}:/opt/python${PYTHONPATH:+:${PYTHONPATH}}"

# uvicorn's settings (bench/floor_bench.py starts the gateway with exactly these flags):
# - uvloop and httptools named, not left to "auto": a layer without their wheels fails here, loudly,
#   instead of silently serving on the slower asyncio loop and h11 parser (about 0.3 ms per request).
# - lifespan on: the clients are built before Lambda Web Adapter's readiness check passes, and a failure
#   there stops the start instead of surfacing on the first request.
# - keep-alive 75 s: the adapter keeps its connection to uvicorn open between invocations; uvicorn's 5 s
#   default closes it after every pause, so the next request pays a new connection.
exec python3 -m uvicorn chatgate.asgi:app \
    --host 127.0.0.1 \
    --port "${AWS_LWA_PORT:-${PORT:-8080}}" \
    --loop uvloop \
    --http httptools \
    --lifespan on \
    --timeout-keep-alive 75 \
    --no-access-log \
    --timeout-graceful-shutdown "${CHATGATE_SHUTDOWN_GRACE_SECONDS:-10}" \
    --no-server-header
