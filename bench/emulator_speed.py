"""How fast the emulator answers, pinned to one core: SendGrid emails/s, FCM pushes/s, and a bare 204 baseline.

Run: python bench/emulator_speed.py [--mail-requests N] [--pushes M] [--client aiohttp|raw]

The emulator runs in a subprocess pinned to core 0 (taskset, else sched_setaffinity); this client pins itself to
the other core. The server's CPU share during each phase is read from /proc, so a figure well under 100 % means
the client, not the emulator, was the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "notifier-demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(port: int, creds: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "notifier", "emulator", "--port", str(port), "--write-credentials", str(creds)]
    if shutil.which("taskset"):
        return subprocess.Popen(["taskset", "-c", "0", *cmd], cwd=ROOT, stdout=subprocess.DEVNULL)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, preexec_fn=lambda: os.sched_setaffinity(0, {0}))


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{base}/_emulator/stats", timeout=1).read()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the emulator did not start") from None
            time.sleep(0.05)


def access_token(base: str, creds: Path) -> str:
    """A token from the emulator's /token, for a JWT signed with the written service-account key."""
    info = json.loads(creds.read_text())
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    head = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": info["private_key_id"]}).encode())
    claims = b64(json.dumps({"iss": info["client_email"], "aud": info["token_uri"], "iat": now,
                             "exp": now + 3600}).encode())
    signature = key.sign(f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
    form = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                   "assertion": f"{head}.{claims}.{b64(signature)}"}).encode()
    with urllib.request.urlopen(f"{base}/token", data=form, timeout=5) as resp:
        return json.loads(resp.read())["access_token"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mail_body(n: int) -> bytes:
    html = "<html><body><p>Hello -name-, your refund request closes on -date-.</p>" + "<p>x</p>" * 50 + "</body></html>"
    return json.dumps({
        "personalizations": [{"to": [{"email": f"user{i}@example.org", "name": f"User {i}"}],
                              "substitutions": {"-name-": f"User {i}", "-date-": "1 October"},
                              "custom_args": {"recipient": f"r{i}", "send": f"s{i}"}} for i in range(n)],
        "from": {"email": "news@example.com", "name": "Notifier"}, "subject": "Hello -name-",
        "content": [{"type": "text/plain", "value": "Hello -name-, closes -date-."},
                    {"type": "text/html", "value": html}],
        "custom_args": {"campaign": "bench", "wave": "P7D"}, "categories": ["bench"], "asm": {"group_id": 1},
    }).encode()


async def run_aiohttp(url: str, body: bytes | None, headers: dict[str, str], total: int, concurrency: int,
                      expect: int) -> float:
    """Seconds to make ``total`` requests over ``concurrency`` keep-alive connections with aiohttp."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                method = session.post(url, data=body, headers=headers) if body is not None else session.get(url)
                async with method as resp:
                    await resp.read()
                    if resp.status != expect:
                        raise SystemExit(f"{url}: HTTP {resp.status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


class _Conn(asyncio.Protocol):
    """One keep-alive connection of the raw client: send the request, read one whole answer, repeat."""

    def __init__(self, request: bytes, counter: list[int], done: asyncio.Future[None], expect: bytes) -> None:
        self.request, self.counter, self.done, self.expect = request, counter, done, expect
        self.buffer = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._next()

    def _next(self) -> None:
        if self.counter[0] <= 0:
            self.transport.close()
            if not self.done.done() and self.counter[1] == self.counter[2]:
                self.done.set_result(None)
            return
        self.counter[0] -= 1
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            if not head.startswith(self.expect) and not self.done.done():
                self.done.set_exception(SystemExit(f"unexpected answer {head[:40]!r}"))
            self.buffer = self.buffer[end + 4 + length:]
            self.counter[2] += 1
            self._next()


async def run_raw(host: str, port: int, request: bytes, total: int, concurrency: int, expect: int) -> float:
    """Seconds to make ``total`` requests over ``concurrency`` keep-alive connections with a minimal client."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    counter = [total, total, 0]  # to send, expected, answered
    started = time.perf_counter()
    for _ in range(concurrency):
        await loop.create_connection(lambda: _Conn(request, counter, done, f"HTTP/1.1 {expect}".encode()), host, port)
    await done
    return time.perf_counter() - started


def raw_request(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def measure(pid: int, label: str, run: Any, count: int, unit: str) -> float:
    cpu = cpu_seconds(pid)
    seconds = asyncio.run(run())
    busy = (cpu_seconds(pid) - cpu) / seconds
    rate = count / seconds
    print(f"{label:<44} {rate:>10,.0f} {unit}/s   ({count:,} in {seconds:.2f} s, emulator CPU {busy:.0%})", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mail-requests", type=int, default=200, help="SendGrid requests of 1,000 personalizations")
    parser.add_argument("--pushes", type=int, default=30_000, help="FCM requests (and as many pings)")
    parser.add_argument("--client", choices=["aiohttp", "raw", "both"], default="both",
                        help="aiohttp client, or a minimal asyncio client that costs the client core less")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, set(os.sched_getaffinity(0)) - {0})
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        creds = Path(tmp) / "creds.json"
        proc = start_emulator(port, creds)
        try:
            wait_ready(base, proc)
            bench(proc.pid, base, port, access_token(base, creds), args)
        finally:
            proc.terminate()
            proc.wait(10)


def bench(pid: int, base: str, port: int, token: str, args: argparse.Namespace) -> None:
    print(f"emulator pid {pid} on core 0; client on cores {sorted(os.sched_getaffinity(0))}")
    body = mail_body(1000)
    sg_headers = {"Authorization": "Bearer SG.bench", "Content-Type": "application/json"}
    sg_url = f"{base}/v3/mail/send"
    asyncio.run(run_aiohttp(sg_url, body, sg_headers, 4, 4, 202))  # warm up
    n = args.mail_requests
    measure(pid, f"sendgrid: {n} x 1,000 personalizations, c=4",
            lambda: run_aiohttp(sg_url, body, sg_headers, n, 4, 202), n * 1000, "emails")
    urllib.request.urlopen(urllib.request.Request(f"{base}/_emulator/reset", method="POST")).read()
    push = json.dumps({"message": {"token": "device-token-" + "x" * 140,
                                   "notification": {"title": "Refunds close soon", "body": "Ask before 1 October"},
                                   "data": {"campaign": "bench", "wave": "P7D"},
                                   "android": {"ttl": "86400s", "priority": "high"},
                                   "apns": {"headers": {"apns-priority": "10"}}}}).encode()
    fcm_path = f"/v1/projects/{PROJECT}/messages:send"
    fcm_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    m = args.pushes
    clients = ["aiohttp", "raw"] if args.client == "both" else [args.client]
    fcm_raw = raw_request("POST", fcm_path, push, fcm_headers)
    ping_raw = raw_request("GET", "/_emulator/ping", b"", {})
    runs = {
        "aiohttp": (lambda: run_aiohttp(base + fcm_path, push, fcm_headers, m, 64, 200),
                    lambda: run_aiohttp(f"{base}/_emulator/ping", None, {}, m, 64, 204)),
        "raw": (lambda: run_raw("127.0.0.1", port, fcm_raw, m, 64, 200),
                lambda: run_raw("127.0.0.1", port, ping_raw, m, 64, 204)),
    }
    for client in clients:
        fcm, ping = runs[client]
        asyncio.run(ping())  # warm up
        pushes = measure(pid, f"fcm ({client} client): {m:,} pushes, c=64", fcm, m, "pushes")
        pings = measure(pid, f"ping ({client} client): {m:,} GETs, c=64", ping, m, "requests")
        print(f"{'':<44} push/ping = {pushes / pings:.2f}")
        urllib.request.urlopen(urllib.request.Request(f"{base}/_emulator/reset", method="POST")).read()


if __name__ == "__main__":
    main()
