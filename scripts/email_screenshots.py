"""Screenshots of the shipped campaign's email, one per locale, on a phone and on a desktop, for the README.

Run it from the repository root, with the project installed (``pip install -e '.[test]'``, for Playwright) and
Debian's Chromium (``/usr/bin/chromium``, or ``NOTIFIER_CHROMIUM``; Playwright never downloads a browser here):

    .venv/bin/python scripts/email_screenshots.py                    # writes docs/screenshots/
    .venv/bin/python scripts/email_screenshots.py --out-dir /tmp/shots --color-scheme dark

For each locale of ``campaigns/tiktok-music-shutdown.yaml`` it renders the announcement (the first message,
which carries both deadlines) through the real ``Renderer``, with the review's sample reader of that locale (a
long, accented name and a refund), and writes full-page PNGs at 375 and 1366 CSS pixels wide:
``email-<locale>-375.png`` and ``email-<locale>-1366.png`` (``-dark`` before ``.png`` in dark mode).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from notifier.campaign import load_campaign
from notifier.render import Renderer
from notifier.review import render_sample, samples

ROOT = Path(__file__).resolve().parent.parent
CAMPAIGN = ROOT / "campaigns" / "tiktok-music-shutdown.yaml"
WIDTHS = {375: 812, 1366: 900}  # CSS pixels wide: a phone, a laptop; the height only sizes the first view
# As tests/browser.py: without the background-networking flags Chromium keeps calling Google's hosts.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def announcements() -> dict[str, str]:
    """Each locale's announcement email as it is sent, by locale."""
    campaign = load_campaign(CAMPAIGN)
    renderer = Renderer(ROOT / "templates", ROOT / "locales")
    found: dict[str, str] = {}
    for sample in samples(campaign):
        if sample.locale not in found:  # the plan's first send: the announcement of both deadlines
            r = render_sample(renderer, campaign, sample)
            assert r.variant.stage == "announcement", sample
            found[sample.locale] = r.email.html
    return found


def write_screenshots(out_dir: Path, chromium: Path, color_scheme: str = "light") -> list[Path]:
    """Full-page PNGs of every locale's announcement at each width; returns the paths written."""
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if color_scheme == "light" else f"-{color_scheme}"
    written = []
    emails = announcements()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=list(FLAGS))
        try:
            for width, height in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": height},
                                              color_scheme=color_scheme)  # type: ignore[arg-type]
                page = context.new_page()
                for locale, html in emails.items():
                    page.set_content(html, wait_until="load")
                    path = out_dir / f"email-{locale}-{width}{suffix}.png"
                    page.screenshot(path=str(path), full_page=True)
                    written.append(path)
                context.close()
        finally:
            browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", type=Path, default=Path(os.environ.get("NOTIFIER_CHROMIUM", "/usr/bin/chromium")))
    parser.add_argument("--color-scheme", choices=("light", "dark"), default="light")
    args = parser.parse_args()
    for path in write_screenshots(args.out_dir, args.chromium, args.color_scheme):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


if __name__ == "__main__":
    main()
