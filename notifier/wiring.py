"""Builds the dispatcher and its channels from settings: the one place that picks transports."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from notifier.channels.base import Channel, Pacer, RateLimiter
from notifier.config import Settings, require_production_secrets
from notifier.dispatch import Dispatcher
from notifier.errors import ConfigError
from notifier.render import Renderer


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels of the configured transport."""
    if settings.transport == "outbox":
        from notifier.channels.outbox import OutboxEmail, OutboxPush

        return {"email": OutboxEmail(settings.outbox_dir, settings.email_from), "push": OutboxPush(settings.outbox_dir)}
    if settings.transport == "providers":
        require_production_secrets(settings)
        return {"email": _sendgrid(settings), "push": _fcm(settings)}
    raise ConfigError(f"NOTIFIER_TRANSPORT: unknown transport {settings.transport!r}")


def _limiter(settings: Settings, channel: str, rate: float | None) -> Pacer | None:
    """A per-channel limit: shared by every worker through Redis when NOTIFIER_RATE_LIMIT_URL is set."""
    if not rate:
        return None
    if settings.rate_limit_url:
        from notifier.channels.pacing import RedisRateLimiter

        return RedisRateLimiter(settings.rate_limit_url, f"notifier:rate:{channel}", rate)
    return RateLimiter(rate)


def _sendgrid(settings: Settings) -> Channel:
    from notifier.channels.sendgrid import SendGridEmail

    if not settings.sendgrid_api_key:
        raise ConfigError("SENDGRID_API_KEY is not set (needed with NOTIFIER_TRANSPORT=providers)")
    return SendGridEmail(settings.sendgrid_api_key, settings.sendgrid_host, settings.email_from,
                         timeout=settings.http_timeout, rate_limiter=_limiter(settings, "email", settings.email_rate),
                         asm_group=settings.sendgrid_asm_group)


def _fcm(settings: Settings) -> Channel:
    from notifier.channels.fcm import FcmPush

    if settings.google_credentials is None:
        raise ConfigError("GOOGLE_APPLICATION_CREDENTIALS is not set (needed with NOTIFIER_TRANSPORT=providers)")
    return FcmPush(settings.google_credentials, settings.fcm_endpoint, concurrency=settings.push_concurrency,
                   connect_timeout=settings.http_connect_timeout, read_timeout=settings.http_read_timeout,
                   batch_seconds=settings.lease_seconds / 2,
                   rate_limiter=_limiter(settings, "push", settings.push_rate))


def build_dispatcher(settings: Settings, sessions: sessionmaker[Session], *,
                     simulated_clock: bool = False) -> Dispatcher:
    """The dispatcher of ``settings``; ``simulated_clock`` when its ticks are given a time that is not the host's
    (the demo, tests, ``dispatch --now``), which turns off the check against the ledger database's clock."""
    renderer = Renderer(settings.templates_dir, settings.locales_dir, default_sender=settings.email_from,
                        studio_dir=settings.studio_dir)
    return Dispatcher(sessions, build_channels(settings), renderer, settings, simulated_clock=simulated_clock)
