"""Services of a test's own, that it may stop and start (never the machine's shared ones), and the real
``notifier dispatch`` as a process: what the everyday-operations tests need to break things as production does."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from notifier.ledger.db import make_engine
from notifier.ledger.models import DeliveryRow

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def state_counts(sessions: sessionmaker[Session], channel: str | None = None) -> Counter[str]:
    """The ledger's delivery rows by state (of one channel, if given)."""
    with sessions() as s:
        q = select(DeliveryRow.state, func.count()).group_by(DeliveryRow.state)
        if channel is not None:
            q = q.where(DeliveryRow.channel == channel)
        return Counter({state: n for state, n in s.execute(q)})


def uncertain_count(sessions: sessionmaker[Session]) -> int:
    """Rows flagged uncertain: the provider may have had them when no answer came."""
    with sessions() as s:
        return int(s.scalar(select(func.count()).where(DeliveryRow.uncertain.is_(True))) or 0)


def write_audience(path: Path, recipients: int) -> Path:
    """Recipients in Jakarta, each with an email address and one push token."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["id", "email", "name", "locale", "timezone", "country", "push_tokens", "joined_at"])
        for n in range(recipients):
            out.writerow([f"u{n:06d}", f"user{n:06d}@example.org", f"User {n}", "en", "Asia/Jakarta", "ID",
                          f"crash-token-{n:06d}", "2024-01-15T00:00:00Z"])
    return path


@dataclass
class OwnPostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary folder, a random port, no fsync): stopping it
    is an outage of the ledger that touches nobody else. As root, its commands run as the ``postgres`` user."""

    workdir: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        assert PG_BIN is not None, "PostgreSQL's server programs are not installed"
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{args[0]}: {done.stderr.strip() or done.stdout.strip()}"

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
        self.port = free_port()
        self._run("initdb", "-D", str(self.workdir / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.workdir / "data"), "-l", str(self.workdir / "server.log"), "-w", "-o",
                  f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        """A fast shutdown: every connection is cut, as when the server restarts or the network fails."""
        self._run("pg_ctl", "-D", str(self.workdir / "data"), "-m", "fast", "-w", "stop")

    def up(self) -> bool:
        engine = make_engine(self.url, connect_args={"connect_timeout": 2})
        try:
            with engine.connect() as conn:
                return conn.execute(text("select 1")).scalar() == 1
        except Exception:
            return False
        finally:
            engine.dispose()


class Dispatch:
    """``notifier dispatch --interval N`` in a process of its own, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        notifier = Path(sys.executable).with_name("notifier")
        with log.open("ab") as out:
            self.process = subprocess.Popen([str(notifier), "-v", "dispatch", *args], cwd=ROOT, env=env,
                                            stdout=out, stderr=subprocess.STDOUT)

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, seconds: float) -> int:
        return self.process.wait(timeout=seconds)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serving(env: dict[str, str], *args: str, options: tuple[str, ...] = (),
            stderr: IO[str] | int = subprocess.PIPE) -> Iterator[str]:
    """``notifier [options] serve [args]`` in its own process, until it answers its health check; yields its base
    URL, and stops it at the end."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "notifier", *options, "serve", "--port", str(port), *args],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"notifier serve exited with {process.returncode}: {process.communicate()[1]}")
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("notifier serve did not answer within 30 s")
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
