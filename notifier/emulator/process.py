"""Run the emulator as its own process and talk to its control API (for the demo, tests and benchmarks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notifier.errors import EmulatorStartError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmulatorProcess:
    """A running emulator: its URL, its credentials file, and its control API."""

    url: str
    credentials: Path
    process: subprocess.Popen[bytes]

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="POST" if data is not None else "GET",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def set_faults(self, faults: dict[str, Any]) -> Any:
        return self._call("/_emulator/faults", faults)

    def reset(self) -> None:
        self._call("/_emulator/reset", {})

    def stats(self) -> dict[str, Any]:
        return dict(self._call("/_emulator/stats"))

    def set_events(self, config: dict[str, Any]) -> dict[str, Any]:
        """Replace the Event Webhook configuration (``url`` required, see ``events``); ValueError when refused."""
        try:
            return dict(self._call("/_emulator/events", config))
        except urllib.error.HTTPError as exc:
            if exc.code != 400:
                raise
            raise ValueError(json.loads(exc.read() or b"{}").get("error", "refused")) from None

    def events_status(self) -> dict[str, Any]:
        """The Event Webhook configuration with its counters (posted_events, failed_posts, pending, ...)."""
        return dict(self._call("/_emulator/events"))

    def events_public_key(self) -> str:
        """The base64 DER public key to verify the emulator's event signatures with, as SendGrid shows it."""
        return str(self._call("/_emulator/events/key")["public_key"])

    def wait_events_posted(self, n: int, timeout: float = 30.0) -> None:
        """Wait until at least ``n`` events were posted and none is pending; TimeoutError with the counters."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.events_status()
            if status["posted_events"] >= n and status["pending"] == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{status['posted_events']} of {n} events posted within {timeout:g} s, "
                                   f"{status['pending']} pending, {status['failed_posts']} failed posts")
            time.sleep(0.05)

    def messages(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every accepted email and push, ("email" | "push", entry), paged so a big log never sits in one reply."""
        since = {"email": 0, "push": 0}
        while True:
            page = self._call(f"/_emulator/messages?since_email={since['email']}&since_push={since['push']}&limit=5000")
            emails, pushes = page.get("emails", []), page.get("pushes", [])
            if not emails and not pushes:
                return
            for kind, entries in (("email", emails), ("push", pushes)):
                since[kind] += len(entries)
                for entry in entries:
                    yield kind, entry

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@contextmanager
def run_emulator(workdir: Path, port: int | None = None, project: str = "notifier-demo",
                 log: str = "full", events_url: str | None = None,
                 events_key: Path | None = None) -> Iterator[EmulatorProcess]:
    """Start ``notifier emulator`` on a free port with fresh credentials in ``workdir``; stop it afterwards.

    ``log="ids"`` keeps only the delivery ids of accepted messages, so a wave of millions fits in memory.
    ``events_url`` and ``events_key`` are its ``--events-url`` and ``--events-key`` (see ``set_events`` for more).
    """
    port = port or free_port()
    credentials = Path(workdir) / "fcm-credentials.json"
    output = (Path(workdir) / "emulator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "notifier", "emulator", "--port", str(port), "--write-credentials", str(credentials),
         "--project", project, "--log", log,
         *(["--events-url", events_url] if events_url else []),
         *(["--events-key", str(events_key)] if events_key is not None else [])],
        stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    emulator = EmulatorProcess(f"http://127.0.0.1:{port}", credentials, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise EmulatorStartError(f"the emulator exited with code {process.returncode}; see {output.name}")
            try:
                emulator.stats()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise EmulatorStartError(f"the emulator did not answer on port {port} within 30 s") from None
                time.sleep(0.1)
        yield emulator
    finally:
        emulator.stop()
        output.close()
