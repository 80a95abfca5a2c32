"""The Mangum handler: buffered mode, `sam local invoke` and `chatgate invoke`.

Mangum runs the ASGI lifespan on every invocation, so it is off here: the app builds its clients on the
first request instead and keeps them for the life of the instance (the event loop Mangum creates at import
is reused across invocations, so the pooled httpx client stays valid).
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from chatgate.asgi import app


def make_handler(asgi_app: Any) -> Mangum:
    return Mangum(asgi_app, lifespan="off")


handler = make_handler(app)
