"""The bare push ceiling of this box: pooled aiohttp POSTs of FCM-sized bodies to a server that only says 200.

No SDK, no checks, no log: whatever rate the real channel and emulator reach is measured against this figure.

Run: python -m bench.ceiling [--requests N] [--concurrency C]   (the server side: python -m bench.ceiling --serve PORT)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.report import peak_rss_mb
from notifier.emulator.process import free_port

PROJECT = "notifier-bench"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Ceiling:
    """Requests per second through one pooled client, and how much memory the bare server peaked at."""

    per_s: float
    server_peak_rss_mb: float


# -- the server (its own process) ------------------------------------------------------------------------


def serve(port: int) -> None:
    """Answer every messages:send with 200 and a message name, nothing else, until killed."""
    from aiohttp import web

    counter = itertools.count(1)

    async def send(request: web.Request) -> web.Response:
        await request.read()
        name = f"projects/{request.match_info['project']}/messages/{next(counter)}"
        return web.Response(body=json.dumps({"name": name}).encode(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/projects/{project}/messages:send", send)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=1024)


# -- the client (the calling process) --------------------------------------------------------------------


def fcm_body(i: int) -> bytes:
    """One FCM v1 request body shaped and sized like notifier/channels/fcm.py's (fake token, ledger ids only)."""
    collapse = "tiktok-music-shutdown:playlist-transfer"
    message = {
        "token": f"fake-{i:012d}:APA91b" + "x" * 140,  # a registration token is about 160 characters
        "notification": {"title": "TikTok Music is closing",
                         "body": "Transfer your playlists to another service before 28 October 2024."},
        "android": {"ttl": "259200s", "priority": "normal", "collapse_key": collapse,
                    "notification": {"tag": collapse}},
        "apns": {"headers": {"apns-collapse-id": collapse, "apns-priority": "5", "apns-expiration": "1730048400"}},
        "data": {"delivery_id": str(i), "campaign_id": "tiktok-music-shutdown", "send_key": "playlist-transfer@P7D"},
        "fcm_options": {"analytics_label": "tiktok-music-shutdown-P7D"},
    }
    return json.dumps({"message": message}).encode()


async def _post_all(url: str, bodies: list[bytes], concurrency: int) -> float:
    """Seconds to post every body through one pooled session; each answer is read, as the channel does."""
    import aiohttp

    headers = {"Authorization": "Bearer ya29.bench-ceiling-token", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        gate = asyncio.Semaphore(concurrency)

        async def post(body: bytes) -> None:
            async with gate, session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"the ceiling server answered {response.status}")

        await post(bodies[0])  # open one connection before the clock starts
        start = time.perf_counter()
        await asyncio.gather(*(post(b) for b in bodies))
        return time.perf_counter() - start


def _wait_listening(process: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the ceiling server exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ceiling server did not listen on port {port} within {timeout:.0f} s") from None
            time.sleep(0.05)


def start_server(port: int) -> subprocess.Popen[bytes]:
    """The bare server as a subprocess (``python -m bench.ceiling --serve PORT``), listening when this returns."""
    process = subprocess.Popen([sys.executable, "-m", "bench.ceiling", "--serve", str(port)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(process, port)
    except BaseException:
        stop_server(process)
        raise
    return process


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def push_ceiling(requests: int = 20000, concurrency: int = 64) -> Ceiling:
    """Requests/s of prebuilt FCM bodies on one pooled client against the bare server: the most a push wave can do."""
    if requests < 1 or concurrency < 1:
        raise ValueError("requests and concurrency must be at least 1")
    bodies = [fcm_body(i) for i in range(1, requests + 1)]  # built before the clock starts
    port = free_port()
    process = start_server(port)
    try:
        url = f"http://127.0.0.1:{port}/v1/projects/{PROJECT}/messages:send"
        seconds = asyncio.run(_post_all(url, bodies, concurrency))
        server_rss = peak_rss_mb(process.pid)
    finally:
        stop_server(process)
    return Ceiling(per_s=requests / seconds, server_peak_rss_mb=server_rss)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, metavar="PORT", help="run the bare server on PORT (internal)")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return
    ceiling = push_ceiling(args.requests, args.concurrency)
    print(f"push ceiling: {ceiling.per_s:,.0f} requests/s ({args.requests} requests, concurrency {args.concurrency}; "
          f"bare server peak RSS {ceiling.server_peak_rss_mb:.1f} MB)")


if __name__ == "__main__":
    main()
