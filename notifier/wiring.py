"""Builds the dispatcher and its channels from settings: the one place that picks transports."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from notifier.channels.base import Channel
from notifier.config import Settings
from notifier.dispatch import Dispatcher
from notifier.errors import ConfigError
from notifier.render import Renderer


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels of the configured transport."""
    if settings.transport == "outbox":
        from notifier.channels.outbox import OutboxEmail, OutboxPush

        return {"email": OutboxEmail(settings.outbox_dir), "push": OutboxPush(settings.outbox_dir)}
    raise ConfigError(f"NOTIFIER_TRANSPORT: unknown transport {settings.transport!r}")


def build_dispatcher(settings: Settings, sessions: sessionmaker[Session]) -> Dispatcher:
    renderer = Renderer(settings.templates_dir, settings.locales_dir)
    return Dispatcher(sessions, build_channels(settings), renderer, settings)
