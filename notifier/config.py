"""Every setting, read from the environment in one place (the CLI, workers and a web app share it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from notifier.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Runtime settings. Build with :func:`load_settings`; override with :meth:`with_`."""

    database_url: str = "sqlite:///notifier.db"
    outbox_dir: Path = Path("outbox")
    templates_dir: Path = PROJECT_ROOT / "templates"
    locales_dir: Path = PROJECT_ROOT / "locales"
    campaigns_dir: Path = PROJECT_ROOT / "campaigns"
    transport: str = "outbox"
    batch_size: int = 500
    lease_seconds: int = 300
    max_attempts: int = 5
    retry_base_seconds: float = 60.0

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {value}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    d = Settings()
    transport = env.get("NOTIFIER_TRANSPORT", d.transport)
    if transport not in ("outbox",):
        raise ConfigError(f"NOTIFIER_TRANSPORT: unknown transport {transport!r} (expected: outbox)")
    return Settings(
        database_url=env.get("NOTIFIER_DATABASE_URL") or d.database_url,
        outbox_dir=Path(env.get("NOTIFIER_OUTBOX_DIR") or d.outbox_dir),
        templates_dir=Path(env.get("NOTIFIER_TEMPLATES_DIR") or d.templates_dir),
        locales_dir=Path(env.get("NOTIFIER_LOCALES_DIR") or d.locales_dir),
        campaigns_dir=Path(env.get("NOTIFIER_CAMPAIGNS_DIR") or d.campaigns_dir),
        transport=transport,
        batch_size=_int(env, "NOTIFIER_BATCH_SIZE", d.batch_size),
        lease_seconds=_int(env, "NOTIFIER_LEASE_SECONDS", d.lease_seconds),
        max_attempts=_int(env, "NOTIFIER_MAX_ATTEMPTS", d.max_attempts),
        retry_base_seconds=float(_int(env, "NOTIFIER_RETRY_BASE_SECONDS", int(d.retry_base_seconds))),
    )
