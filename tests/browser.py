"""Open a local HTML page in headless Chromium (Debian's, driven by playwright) as a person would see it.

Requests leaving the page's folder are refused and recorded: a report must open offline.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: As this machine's notes advise: no background networking, no first-run work, no GPU, as root no sandbox.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_available() -> bool:
    if CHROMIUM is None:
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class PageView:
    page: Any
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    @property
    def images(self) -> list[dict[str, Any]]:
        """Every <img> of the page: its source and whether it loaded (complete, with a natural width)."""
        return self.page.evaluate(
            "Array.from(document.images).map(i => "
            "({src: i.getAttribute('src'), loaded: i.complete && i.naturalWidth > 0}))"
        )

    def text(self) -> str:
        return self.page.inner_text("body")


@contextlib.contextmanager
def open_page(path: Path, width: int = 1280, height: int = 900) -> Iterator[PageView]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            view = PageView(page)

            def route(r: Any) -> None:
                if r.request.url.startswith("file://") or r.request.url.startswith("data:"):
                    r.continue_()
                else:
                    view.failed_requests.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: view.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: view.console_errors.append(str(e)))
            page.goto(path.resolve().as_uri(), wait_until="load")
            yield view
        finally:
            browser.close()
