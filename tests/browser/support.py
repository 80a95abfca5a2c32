"""Headless Chromium for the console's tests: Debian's `chromium` driven by Playwright for Python (no
browser download, ever), a fresh profile per launch, and a record of what the page complained about.

Everything the browser loads is on 127.0.0.1; Chromium's own background traffic (component updates,
sync, QUIC probes) is switched off."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
# Screenshots of each run (gitignored); the good ones are copied into docs/console/ by hand.
SHOTS = ROOT / "tests" / "browser" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "Debian's chromium is required for the console's browser tests: `make browser` installs it"
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watched:
    """A page and what it said: console errors (CSP and Trusted Types refusals among them), uncaught
    exceptions, and any dialog an injected script opened (alert, confirm, prompt)."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def complaints(self) -> list[str]:
        return self.errors + [f"dialog: {d}" for d in self.dialogs]


def watch(page: Page) -> Watched:
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(message.text)

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    page.on("dialog", on_dialog)
    return watched


def new_page(browser: Browser, *, width: int = 1280, height: int = 900, **options: Any) -> Watched:
    context = browser.new_context(
        viewport={"width": width, "height": height}, accept_downloads=True, **options
    )
    context.set_default_timeout(15_000)  # a page that broke fails in seconds, not after Playwright's 30
    return watch(context.new_page())


def screenshot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base: str, key: str, *, path: str = "/console") -> None:
    """Open the console and sign in with the keyboard only: the key field has focus, Enter submits."""
    page.goto(f"{base}{path}")
    field_ = page.get_by_label("Admin key")
    field_.wait_for()
    assert page.evaluate("document.activeElement.id") == "admin-key"
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Sign out").wait_for()
