"""GET /console: the admin console, a static page (console/static/) that signs in with an admin key and
calls the admin API (/v1/organization/...) of the same origin. No server-side session, no templating:
the server only hands out files, with headers that keep the page to itself.

- Content-Security-Policy: everything from this origin only, no inline script or style, no plugins, no
  <base>, never framed; `require-trusted-types-for 'script'` makes the browser refuse any HTML-parsing
  sink, so a name can only ever reach the page as text.
- Caching: the page and its modules are revalidated on every load (ETag, `no-cache`: a 304 costs one
  small round trip, and a deploy shows at once); the vendored chart library is named by version and
  cached for a year.
- Compression: gzip where the browser accepts it, done here because API Gateway does not compress a
  streamed integration's response. Behind the buffered integration (Mangum: `scope["aws.event"]`), the
  API's own compression (MinimumCompressionSize) does it instead, so nothing binary crosses Mangum.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from chatgate.console.assets import Asset, AssetCache
from chatgate.errors import NotFound

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "add_console_routes", "console_response"]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
REVALIDATE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"

_cache = AssetCache()


def accepts_gzip(header: str | None) -> bool:
    """Whether an Accept-Encoding header allows gzip (`gzip;q=0` refuses it)."""
    for part in (header or "").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "x-gzip", "*"):
            quality = params.strip().removeprefix("q=")
            try:
                return not params.strip() or float(quality) > 0
            except ValueError:
                return False
    return False


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    candidates = {candidate.strip().removeprefix("W/") for candidate in header.split(",")}
    return etag in candidates or "*" in candidates


def console_response(request: Request, asset: Asset) -> Response:
    """The response for one asset: its security headers, caching, compression and conditional GET."""
    headers = {
        **SECURITY_HEADERS,
        "cache-control": IMMUTABLE if asset.immutable else REVALIDATE,
        "etag": asset.etag,
        "vary": "Accept-Encoding",
    }
    if _etag_matches(request.headers.get("if-none-match"), asset.etag):
        return Response(status_code=304, headers=headers)
    body = asset.body
    compress = "aws.event" not in request.scope and accepts_gzip(request.headers.get("accept-encoding"))
    if compress and asset.gzipped is not None:
        body = asset.gzipped
        headers["content-encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)


async def _serve(request: Request, path: str) -> Response:
    assets = _cache.loaded
    if assets is None:
        assets = await run_in_threadpool(_cache.get)
    asset = assets.get(path)
    if asset is None:
        raise NotFound(f"Invalid URL ({request.method} {request.url.path})", code="unknown_url")
    return console_response(request, asset)


async def console_page(request: Request) -> Response:
    return await _serve(request, "index.html")


async def console_asset(request: Request) -> Response:
    return await _serve(request, request.path_params["asset"])


def add_console_routes(app: Starlette, prefixes: tuple[str, ...]) -> None:
    """/console (the page) and /console/<file> (its modules, styles, the chart library), per prefix.

    The page links its files relatively (`console/app.js`), so it works under any prefix and behind an
    API Gateway stage path alike."""
    for prefix in prefixes:
        app.add_route(f"{prefix}/console", console_page, methods=["GET"])
        app.add_route(f"{prefix}/console/{{asset:path}}", console_asset, methods=["GET"])
