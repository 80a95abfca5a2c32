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

exec python3 -m uvicorn chatgate.asgi:app \
    --host 127.0.0.1 \
    --port "${AWS_LWA_PORT:-${PORT:-8080}}" \
    --no-access-log \
    --timeout-graceful-shutdown "${CHATGATE_SHUTDOWN_GRACE_SECONDS:-10}" \
    --no-server-header
