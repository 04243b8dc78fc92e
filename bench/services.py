"""The benchmark's own services: a PostgreSQL database of its own, a private redis-server, the emulator in
ids-only mode, and Celery workers. Each is stopped (or dropped) when the benchmark ends, whatever happens."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from notifier.emulator.process import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], bool], seconds: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {what}")
        time.sleep(interval)


@contextmanager
def scratch_database(server_url: str, name: str) -> Iterator[str]:
    """A fresh database ``name`` on the server of ``server_url`` (dropped afterwards); yields its URL."""
    url = make_url(server_url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def private_redis(workdir: Path) -> Iterator[str]:
    """Our own redis-server on a free port (the shared one at 6379 is never touched); yields its URL."""
    import redis

    port = free_port()
    with (workdir / "redis.log").open("ab") as log:
        process = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                    "--appendonly", "no", "--dir", str(workdir)], stdout=log,
                                   stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)

    def up() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    try:
        wait_for(up, 30, f"redis-server on port {port} did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        process.kill()


class Workers:
    """Celery worker processes of ``celery_app`` (solo pool: the process is the worker, so its RSS is its own)."""

    def __init__(self, env: dict[str, str], logs: Path, app: str = "celery_app", queues: str = "email,push") -> None:
        self.env, self.logs, self.app, self.queues = env, logs, app, queues
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int) -> list[str]:
        names = []
        for i in range(count):
            name = f"{self.app.replace('.', '-')}{i}-{os.getpid()}"
            with (self.logs / f"{name}.log").open("ab") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", self.app, "worker", "-Q", self.queues, "--pool", "solo",
                     "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING",
                     "-n", f"{name}@%h"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True))
            names.append(f"{name}@{socket.gethostname()}")
        return names

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        for p in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        self.processes = []

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
                         for p in sorted(self.logs.glob("*.log")) if p.name != "redis.log")


def wait_for_workers(app: object, names: list[str], workers: Workers, seconds: float = 90) -> None:
    """Until every worker answers a ping (a worker that died says why)."""
    deadline = time.monotonic() + seconds
    while True:
        replies = app.control.ping(destination=names, timeout=1.0) or []  # type: ignore[attr-defined]
        if {name for reply in replies for name in reply} >= set(names):
            return
        if not workers.alive() or time.monotonic() > deadline:
            raise SystemExit(f"bench: the workers did not start\n{workers.log_tail()}")
