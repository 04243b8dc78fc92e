"""The shipped shutdown campaign, moved in time so that its first wave (both deadlines announced by email, the
playlist transfer by push) is due right now in every zone of the audience."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from bench.services import ROOT

SHIPPED = ROOT / "campaigns" / "tiktok-music-shutdown.yaml"
FIRST_WAVE = date(2024, 9, 28)  # the shipped campaign's first wave: refund P61D merged with playlist P30D


def due_now(now: datetime) -> tuple[str, datetime]:
    """The campaign file's text with its deadlines shifted and its window widened to the whole day, and the
    instant to schedule it at (two days before the wave, so no send is "before the campaign was scheduled").

    The wave's day is yesterday-or-today in UTC terms: 10:00 local on that day has passed in every zone from
    UTC-12 to UTC+14, and the deadlines are weeks ahead, so the staleness guard keeps every message.
    """
    wave_day = (now - timedelta(hours=26)).date()
    shift = wave_day - FIRST_WAVE
    text = SHIPPED.read_text(encoding="utf-8")
    for old in ("2024-10-28", "2024-11-28"):
        new = (date.fromisoformat(old) + shift).isoformat()
        text = text.replace(f'at: "{old}T00:00"', f'at: "{new}T00:00"')
    text, n = re.subn(r'window: \["08:00", "21:00"\]', 'window: ["00:00", "23:59"]', text)
    if n != 1:
        raise SystemExit(f"bench: {SHIPPED} has no delivery window to widen; update bench/wave.py")
    scheduled = datetime.combine(wave_day - timedelta(days=2), datetime.min.time(), now.tzinfo)
    return text, scheduled
