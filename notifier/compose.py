"""Compose: a row the guard cleared becomes the message its channel sends (rendered in the recipient's locale, with
its unsubscribe headers or its push expiry), and a claimed batch becomes what is ready to send per channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from notifier.campaign import Campaign, zone
from notifier.channels.base import EmailMessage, Message, PushMessage
from notifier.config import Settings
from notifier.errors import UserError, raised_at
from notifier.ledger.claims import ClaimedRow, RowOutcome
from notifier.links import open_token, unsubscribe_headers
from notifier.planner import parse_send_key, send_channels
from notifier.render import Personal, Renderer

__all__ = ["Composed", "MessageBuilder", "brief", "may_fall_back_to_email"]


@dataclass
class Composed:
    """A claimed batch read and built: its campaigns, the outcomes of rows that go nowhere now (the guard's), and the
    messages ready to send per channel, each with its row and locale."""

    campaigns: dict[str, Campaign]
    early: list[RowOutcome] = field(default_factory=list)
    ready: dict[str, list[tuple[ClaimedRow, Message, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageBuilder:
    """Builds one row's message; a simulated clock (the demo, tests, dispatch --now) dates the mail by it."""

    renderer: Renderer
    settings: Settings
    simulated_clock: bool = False

    def build(self, campaign: Campaign, row: ClaimedRow, deadlines: tuple[str, ...], locale: str,
              now: datetime) -> Message:
        """The message of a cleared row, carrying only its live ``deadlines``, in ``locale``."""
        tz = zone(row.timezone)
        items = tuple(i for i in parse_send_key(row.send_key) if i.deadline in deadlines)
        personal = Personal.of(row.name, row.attributes, locale, row.country)
        variant = self.renderer.variant(campaign, locale, items, tz, now, row.country, personal)
        ids = {"delivery_id": str(row.id), "campaign_id": campaign.id, "send_key": row.send_key}
        if row.channel == "email":
            assert row.email is not None
            headers = unsubscribe_headers(self.settings.public_url, self.settings.secret_key, row.id,
                                          issued=now.date(), mailto=self.settings.unsubscribe_mailto)
            return EmailMessage(row.id, row.email, personal.name, variant.subject, variant.text, variant.html, personal,
                                variant=variant.key, tags=(campaign.id, f"{campaign.id}:{row.wave}"),
                                metadata=ids, headers=headers, marketing=campaign.honours_opt_outs,
                                sender=campaign.sender.from_header if campaign.sender else None,
                                reply_to=campaign.sender.reply_to if campaign.sender else None,
                                date=now if self.simulated_clock else None)  # a simulated run's mail is dated by it
        push = self.renderer.push(variant, personal)
        # A merged push speaks for every deadline it carries: it lives, and collapses, with the latest of them.
        expires, latest = max((campaign.deadline(d).instant_in(tz), d) for d in deadlines)
        opened = {"open_token": open_token(self.settings.secret_key, row.id)}  # the app's proof for POST /opens
        return PushMessage(row.id, row.tokens, push.title, push.body, expires_at=expires,
                           collapse_key=f"{campaign.id}:{latest}", metadata={**ids, **opened},
                           tags=(f"{campaign.id}-{row.wave}",), marketing=campaign.honours_opt_outs, ttl=expires - now,
                           link=push.link or None)


def may_fall_back_to_email(campaign: Campaign, row: ClaimedRow) -> bool:
    """A fallback email takes a dead push's place: always in a campaign without email, else only when the send
    goes by email too (the one rule, ``planner.send_channels``), so it never carries a deadline announced by push
    only, nor one that email merges into another send."""
    return "email" not in campaign.channels or "email" in send_channels(campaign, row.timezone, row.send_key)


def brief(exc: BaseException) -> str:
    """An exception as one short line for the ledger: our own errors with their message (a render error names
    template, locale and line, never recipient data), anything else by type and place only."""
    if isinstance(exc, UserError):
        return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"[:300]
    return f"{type(exc).__name__} at {raised_at(exc)}"
