"""GET /console and its files: what a browser receives (security headers, media types, caching,
compression, conditional requests), that the page holds nothing a strict CSP would block, and that the
vendored chart library is the lock file's version. The browser itself is in tests/browser/."""

from __future__ import annotations

import base64
import gzip
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatgate.app import create_app
from chatgate.console import CONTENT_SECURITY_POLICY, accepts_gzip
from chatgate.console.assets import STATIC, load
from chatgate.lambda_handler import make_handler
from tests.fakes import fake_services

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = next(STATIC.glob("vendor/uplot-*.iife.min.js")).relative_to(STATIC).as_posix()
STYLES = next(STATIC.glob("vendor/uplot-*.min.css")).relative_to(STATIC).as_posix()


@pytest.fixture
def client() -> httpx.AsyncClient:
    services, _keys, _sent = fake_services()
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services=services)), base_url="http://gw"
    )


class PageParser(HTMLParser):
    """The page's references (script src, link href) and anything inline a strict CSP would refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            if not attributes.get("src"):
                self.inline.append("<script> without src")
            else:
                self.references.append(str(attributes["src"]))
        if tag == "link" and attributes.get("href"):
            self.references.append(str(attributes["href"]))
        if tag == "style":
            self.inline.append("<style>")
        self.inline += [f"{tag} {name}=" for name, _ in attrs if name == "style" or name.startswith("on")]


def page() -> PageParser:
    parser = PageParser()
    parser.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    return parser


@pytest.mark.parametrize("prefix", ["", "/api/public"])
async def test_the_page_is_served_with_its_security_headers(client: httpx.AsyncClient, prefix: str) -> None:
    response = await client.get(f"{prefix}/console")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text.startswith("<!doctype html>")
    csp = {d.split()[0]: d.split()[1:] for d in response.headers["content-security-policy"].split("; ")}
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "'unsafe-eval'" not in CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-request-id"].startswith("req_")


async def test_every_file_the_page_and_its_modules_load_is_served(client: httpx.AsyncClient) -> None:
    """What index.html references and what each module imports, relative to /console, all answer 200 with
    the right media type and the same headers; nothing points at another origin."""
    wanted = set(page().references)
    assert all(not re.match(r"^[a-z]+:|^//", ref) for ref in wanted), wanted
    for module in STATIC.rglob("*.js"):
        if "vendor" in module.parts:
            continue
        text = module.read_text(encoding="utf-8")
        folder = module.parent.relative_to(STATIC)
        for target in re.findall(r'^import .* from "(\.{1,2}/[^"]+)";$', text, flags=re.M):
            resolved = (Path("/") / folder / target).resolve().relative_to("/")
            wanted.add(f"console/{resolved.as_posix()}")
    assert "console/app.js" in wanted and "console/views/usage.js" in wanted
    media = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
    }
    for ref in sorted(wanted):
        response = await client.get(f"/{ref}")
        assert response.status_code == 200, ref
        assert response.headers["content-type"] == media[Path(ref).suffix], ref
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == (STATIC / ref.removeprefix("console/")).read_bytes()


def test_the_page_has_nothing_inline_and_the_code_never_parses_html() -> None:
    assert page().inline == []
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|srcdoc")
    for module in STATIC.rglob("*.js"):
        found = sinks.findall(module.read_text(encoding="utf-8"))
        assert found == [], f"{module.relative_to(STATIC)} uses {found}"


async def test_gzip_when_accepted_identity_otherwise(client: httpx.AsyncClient) -> None:
    library = f"/console/{LIBRARY}"
    original = (STATIC / LIBRARY).read_bytes()
    packed = await client.get(library, headers={"accept-encoding": "gzip, deflate, br"})
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) < len(original) / 2
    assert packed.content == original  # httpx inflated it
    for refused in ("identity", "gzip;q=0", "br"):
        plain = await client.get(library, headers={"accept-encoding": refused})
        assert "content-encoding" not in plain.headers, refused
        assert int(plain.headers["content-length"]) == len(original)
    assert accepts_gzip("deflate, gzip;q=0.5") and accepts_gzip("*") and not accepts_gzip("x;q=1, gzip; q=0")


async def test_revalidation_and_long_caching(client: httpx.AsyncClient) -> None:
    first = await client.get("/console/app.js")
    etag = first.headers["etag"]
    again = await client.get("/console/app.js", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag and "content-security-policy" in again.headers
    changed = await client.get("/console/app.js", headers={"if-none-match": '"something-else"'})
    assert changed.status_code == 200 and changed.content == first.content
    vendored = await client.get(f"/console/{STYLES}")
    assert vendored.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert first.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/console/nope.js",
        "/console/",
        "/console/%2e%2e/__init__.py",
        "/console/../console/assets.py",
        "/console/vendor/uplot-LICENSE",
        "/api/public/console/views",
    ],
)
async def test_anything_else_is_a_404_in_the_error_shape(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_url" and error["type"] == "invalid_request_error"
    assert (await client.post("/console")).status_code == 405


def test_behind_the_buffered_integration_the_function_sends_text_and_api_gateway_compresses() -> None:
    """Under Mangum (buffered mode) the page goes out uncompressed and not base64 (API Gateway's own
    MinimumCompressionSize compresses it); the headers are the same."""
    services, _keys, _sent = fake_services()
    handler = make_handler(create_app(services=services))
    event: dict[str, Any] = json.loads((ROOT / "events" / "models_list.json").read_text())
    event.update(path="/console", httpMethod="GET", body=None)
    event["headers"] = {"Accept-Encoding": "gzip", "Host": "abc123.execute-api.eu-central-1.amazonaws.com"}
    event["multiValueHeaders"] = {k: [v] for k, v in event["headers"].items()}
    event["pathParameters"] = {"proxy": "console"}
    result = handler(event, None)
    assert result["statusCode"] == 200
    assert result["isBase64Encoded"] is False
    headers = {k.lower(): v for k, v in (result.get("multiValueHeaders") or {}).items()}
    headers.update({k.lower(): [v] for k, v in (result.get("headers") or {}).items()})
    assert "content-encoding" not in headers
    assert headers["content-security-policy"] == [CONTENT_SECURITY_POLICY]
    body = result["body"]
    assert body.startswith("<!doctype html>"), base64.b64decode(body)[:20] if not body.startswith("<") else ""


def test_the_vendored_chart_library_is_the_lock_files_version() -> None:
    """uPlot is committed (so `pip install`, `chatgate dev` and `sam build` need no npm), and must be
    byte for byte the file npm ci installs from package-lock.json: `make console-vendor` refreshes it."""
    lock = json.loads((ROOT / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/uplot"]["version"]
    installed = ROOT / "node_modules" / "uplot"
    assert (installed / "package.json").is_file(), "node_modules/uplot is missing: `make install` (npm ci)"
    assert json.loads((installed / "package.json").read_text())["version"] == version
    vendored = {p.name for p in (STATIC / "vendor").iterdir()}
    assert vendored == {f"uplot-{version}.iife.min.js", f"uplot-{version}.min.css", "uplot-LICENSE"}
    assert (STATIC / "vendor" / f"uplot-{version}.iife.min.js").read_bytes() == (
        installed / "dist" / "uPlot.iife.min.js"
    ).read_bytes()
    assert (STATIC / "vendor" / f"uplot-{version}.min.css").read_bytes() == (
        installed / "dist" / "uPlot.min.css"
    ).read_bytes()
    assert f"vendor/uplot-{version}." in (STATIC / "index.html").read_text()


def test_assets_load_once_and_compress_only_what_is_worth_it() -> None:
    assets = load()
    assert "index.html" in assets and "vendor/uplot-LICENSE" not in assets
    for asset in assets.values():
        if asset.gzipped is not None:
            assert gzip.decompress(asset.gzipped) == asset.body
            assert len(asset.gzipped) < len(asset.body)
