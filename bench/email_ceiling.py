"""The email ceiling of this box: prebuilt 1,000-personalization SendGrid bodies posted by a bare pooled client to
our emulator (``log="ids"``, as the bench runs it), messages (personalizations) accepted per second.

Nothing of notifier is in the way (no ledger, no rendering, no SDK, no Celery): the body is built once, before the
clock starts, and posted again and again, so what is left is the emulator's own cost per message on this box (its
JSON parse and SendGrid's checks, on one event loop). No email wave through the emulator can go faster, so the
bench divides the wave's rate by this figure (``email_ratio``).

Run: python -m bench.email_ceiling [--requests N] [--concurrency C] [--client aiohttp|threads]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.population import NAMES
from bench.report import peak_rss_mb

ROOT = Path(__file__).resolve().parent.parent
PERSONALIZATIONS = 1000  # SendGrid's most per request, and what our adapter sends a full batch as
SEND_KEY = "playlist-transfer@P30D+refund@P61D"  # the bench wave's email: both deadlines announced
HEADERS = {"Authorization": "Bearer SG.bench", "Content-Type": "application/json"}
CLIENTS = ("aiohttp", "threads")


@dataclass(frozen=True)
class EmailCeiling:
    """Messages accepted per second by the emulator from a bare client, and what the run was."""

    per_s: float
    messages: int  # personalizations the emulator counted as accepted during the timed posts
    requests: int
    body_bytes: int
    client: str
    concurrency: int
    emulator_cpu_share: float  # of one core while the clock ran: well under 1.0 means something else was the limit
    emulator_peak_rss_mb: float

    @property
    def emulator_us_per_message(self) -> float:
        """The emulator's CPU time per accepted message, in microseconds."""
        return self.emulator_cpu_share * 1e6 / self.per_s


def mail_body(n: int = PERSONALIZATIONS, first_id: int = 1_000_001) -> bytes:
    """One mail/send body as notifier's SendGrid adapter builds it for the bench wave: the shipped campaign's
    pt-BR variant, ``n`` recipients with varied addresses and names, their ledger ids and unsubscribe headers."""
    from notifier.campaign import load_campaign, zone
    from notifier.channels.base import EmailMessage
    from notifier.channels.sendgrid import SendGridEmail
    from notifier.links import unsubscribe_headers
    from notifier.planner import parse_send_key
    from notifier.render import Personal, Renderer

    campaign = load_campaign(ROOT / "campaigns" / "tiktok-music-shutdown.yaml")
    renderer = Renderer(ROOT / "templates", ROOT / "locales")
    now = datetime(2024, 9, 28, 13, tzinfo=UTC)
    items = parse_send_key(SEND_KEY)
    first, last = NAMES["BR"]
    messages = []
    for i in range(n):
        delivery_id = first_id + i
        personal = Personal.of(f"{first[i % len(first)]} {last[i // len(first) % len(last)]}", {}, "pt-BR", "BR")
        variant = renderer.variant(campaign, "pt-BR", items, zone("America/Sao_Paulo"), now, "BR", personal)
        domain = ("example.com", "example.org", "example.net")[i % 3]
        messages.append(EmailMessage(
            delivery_id, f"user{delivery_id}@{domain}", personal.name, variant.subject, variant.text, variant.html,
            personal, variant=variant.key, tags=(campaign.id, f"{campaign.id}:{items[0].wave}"),
            metadata={"delivery_id": str(delivery_id), "campaign_id": campaign.id, "send_key": SEND_KEY},
            headers=unsubscribe_headers("https://notify.bench.example", "bench-" + "k" * 40, delivery_id,
                                        issued=now.date()),
            marketing=campaign.honours_opt_outs))
    channel = SendGridEmail("SG.bench", "http://127.0.0.1:9", "TikTok Music <no-reply@music.example.com>")
    return json.dumps(channel.payload(messages)).encode()


async def _post_aiohttp(url: str, body: bytes, requests: int, concurrency: int, mark: Callable[[], None]) -> float:
    """Seconds to post ``body`` ``requests`` times over ``concurrency`` pooled aiohttp connections; ``mark`` is
    called once they are open, as the clock starts."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def post() -> None:
            async with session.post(url, data=body, headers=HEADERS) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(f"the emulator answered {response.status}: {(await response.text())[:300]}")

        async def lane(count: int) -> None:
            for _ in range(count):
                await post()

        await asyncio.gather(*(post() for _ in range(concurrency)))  # open the connections before the clock starts
        mark()
        start = time.perf_counter()
        await asyncio.gather(*(lane(k) for k in _shares(requests, concurrency)))
        return time.perf_counter() - start


def post_aiohttp(url: str, body: bytes, requests: int, concurrency: int, mark: Callable[[], None]) -> float:
    return asyncio.run(_post_aiohttp(url, body, requests, concurrency, mark))


def post_threads(url: str, body: bytes, requests: int, concurrency: int, mark: Callable[[], None]) -> float:
    """Seconds to post ``body`` ``requests`` times from ``concurrency`` threads, a requests session each; ``mark``
    is called once the connections are open, as the clock starts."""
    import requests as http

    sessions = [http.Session() for _ in range(concurrency)]

    def post(session: Any) -> None:
        response = session.post(url, data=body, headers=HEADERS, timeout=120)
        if response.status_code != 202:
            raise RuntimeError(f"the emulator answered {response.status_code}: {response.text[:300]}")

    def lane(session: Any, count: int) -> None:
        for _ in range(count):
            post(session)

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, sessions))  # open the connections before the clock starts
            mark()
            start = time.perf_counter()
            list(pool.map(lane, sessions, _shares(requests, concurrency)))
            return time.perf_counter() - start
    finally:
        for session in sessions:
            session.close()


Poster = Callable[[str, bytes, int, int, Callable[[], None]], float]
POSTERS: dict[str, Poster] = {"aiohttp": post_aiohttp, "threads": post_threads}


def _shares(requests: int, lanes: int) -> list[int]:
    return [requests // lanes + (1 if i < requests % lanes else 0) for i in range(lanes)]


def email_ceiling(workdir: Path, requests: int = 100, concurrency: int = 2, client: str = "aiohttp",
                  body: bytes | None = None) -> EmailCeiling:
    """Messages/s the emulator accepts from prebuilt full bodies: the most an email wave through it can do.

    The emulator's own counters must have grown by every message posted (RuntimeError otherwise), so a body it
    refused or a request that was lost cannot pass for speed."""
    from notifier.emulator.process import run_emulator

    if requests < 1 or concurrency < 1:
        raise ValueError("requests and concurrency must be at least 1")
    if client not in POSTERS:
        raise ValueError(f"client must be one of {', '.join(POSTERS)}, not {client!r}")
    body = body if body is not None else mail_body()
    per_request = len(json.loads(body)["personalizations"])
    with run_emulator(Path(workdir), log="ids") as emulator:
        url = f"{emulator.url}/v3/mail/send"
        started: list[tuple[dict[str, Any], float]] = []

        def mark() -> None:  # the counters and the emulator's CPU time as the clock starts
            started.append((emulator.stats(), _cpu_seconds(emulator.process.pid)))

        seconds = POSTERS[client](url, body, requests, concurrency, mark)
        cpu = _cpu_seconds(emulator.process.pid)
        after = emulator.stats()
        rss = peak_rss_mb(emulator.process.pid)
    [(before, cpu_before)] = started
    accepted = after["emails_accepted"] - before["emails_accepted"]
    answered = _answered(after) - _answered(before)
    if accepted != requests * per_request or answered != requests:
        raise RuntimeError(f"the emulator accepted {accepted} messages in {answered} requests, "
                           f"not {requests * per_request} in {requests}")
    return EmailCeiling(accepted / seconds, accepted, requests, len(body), client, concurrency,
                        (cpu - cpu_before) / seconds, rss)


def _answered(stats: dict[str, Any]) -> int:
    """Mail requests the emulator answered 202 (accepted) so far."""
    return int(stats["requests"].get("sendgrid", {}).get("202", 0))


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.email_ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="bodies posted while the clock runs")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2], help="connections (several: one run each)")
    parser.add_argument("--client", choices=CLIENTS, nargs="+", default=["aiohttp"])
    args = parser.parse_args(argv)
    body = mail_body()
    print(f"body: {len(body):,} bytes, {PERSONALIZATIONS} personalizations")
    with tempfile.TemporaryDirectory(prefix="notifier-email-ceiling-") as tmp:
        for client in args.client:
            for concurrency in args.concurrency:
                got = email_ceiling(Path(tmp), args.requests, concurrency, client, body)
                print(f"email ceiling: {got.per_s:,.0f} messages/s ({client}, concurrency {concurrency}, "
                      f"{got.requests} requests, {got.messages:,} messages; emulator "
                      f"{got.emulator_cpu_share:.0%} of a core, {got.emulator_us_per_message:.1f} µs CPU a message, "
                      f"peak RSS {got.emulator_peak_rss_mb:.1f} MB)", flush=True)


if __name__ == "__main__":
    main()
