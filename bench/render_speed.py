"""Rendering speed: messages per second with variants rendered once and filled per recipient, against the
baseline of rendering every recipient's message from the templates (measured in the same run).

Run:  python bench/render_speed.py [--recipients 20000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from notifier.campaign import load_campaign, zone
from notifier.planner import parse_send_key
from notifier.render import Personal, Renderer

ROOT = Path(__file__).resolve().parent.parent
SENDS = [("playlist-transfer@P30D+refund@P61D", datetime(2024, 9, 28, 3, tzinfo=UTC)),
         ("refund@P7D", datetime(2024, 11, 21, 3, tzinfo=UTC))]
PEOPLE = [("id", "Asia/Jakarta", "ID"), ("pt-BR", "America/Sao_Paulo", "BR"), ("es-MX", "America/Mexico_City", "MX"),
          ("en", "Australia/Sydney", "AU")]


def run(recipients: int, cache_size: int) -> float:
    """Messages (email + push) per second for ``recipients`` recipients spread over locales and sends."""
    campaign = load_campaign(ROOT / "campaigns" / "tiktok-music-shutdown.yaml")
    renderer = Renderer(ROOT / "templates", ROOT / "locales", cache_size=cache_size)
    start = time.perf_counter()
    for i in range(recipients):
        locale, tz, country = PEOPLE[i % len(PEOPLE)]
        key, now = SENDS[i % len(SENDS)]
        personal = Personal(f"Recipient {i}", None)
        variant = renderer.variant(campaign, locale, parse_send_key(key), zone(tz), now, country, personal)
        renderer.email(variant, personal)
        renderer.push(variant, personal)
    return recipients / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    args = parser.parse_args()
    baseline = run(max(200, args.recipients // 50), cache_size=0)  # every message from the templates
    cached = run(args.recipients, cache_size=4096)
    print(f"baseline (render every message): {baseline:10,.0f} recipients/s (email + push each)")
    print(f"variants rendered once, filled:  {cached:10,.0f} recipients/s (email + push each)")
    print(f"ratio: {cached / baseline:.0f}x")


if __name__ == "__main__":
    main()
