"""Drives Open WebUI in headless Chromium (Playwright on the system browser): send one chat
message to a shim model, wait for the answer, save a screenshot. Run by open_webui.sh.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MESSAGE = "Say hello through shim, please."


def dismiss_dialogs(page: Page) -> None:
    """The first visit may show a "what's new" dialog over the chat."""
    for label in ("Okay, Let's Go!", "Okay, Let's Go", "Close"):
        button = page.get_by_role("button", name=label)
        if button.count() and button.first.is_visible():
            button.first.click()
            page.wait_for_timeout(500)
            return
    page.keyboard.press("Escape")


def chat(page: Page, *, url: str, model: str, expect: str, screenshot: Path) -> None:
    page.goto(url, wait_until="domcontentloaded")
    chat_input = page.locator("#chat-input")
    chat_input.wait_for(state="visible", timeout=120_000)
    page.wait_for_timeout(1_000)
    dismiss_dialogs(page)
    # The model picker shows the model shim lists in /v1/models (DEFAULT_MODELS preselects it).
    page.get_by_text(model).first.wait_for(state="visible", timeout=30_000)
    chat_input.click()
    page.keyboard.type(MESSAGE)
    page.keyboard.press("Enter")
    page.get_by_text(MESSAGE).first.wait_for(state="visible", timeout=30_000)
    page.get_by_text(expect).first.wait_for(state="visible", timeout=90_000)
    # Let the stream finish and the UI settle (title generation, buttons under the answer).
    page.wait_for_timeout(3_000)
    page.screenshot(path=str(screenshot), full_page=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--model", required=True)
    parser.add_argument("--expect", required=True, help="text of the model's answer")
    parser.add_argument("--screenshot", type=Path, required=True)
    args = parser.parse_args()
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(30_000)
            try:
                chat(page, url=args.url, model=args.model, expect=args.expect,
                     screenshot=args.screenshot)  # fmt: skip
            except PlaywrightTimeout as exc:
                failed = args.screenshot.with_name(args.screenshot.stem + "-failed.png")
                page.screenshot(path=str(failed))
                print(f"timed out: {exc}\nthe page as it was: {failed}", file=sys.stderr)
                return 1
        finally:
            browser.close()
    print(f"answer seen, screenshot {args.screenshot} ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
