"""A test of any locale × send × channel to the campaign's own people (its seeds), through the real transport.

A test send is rendered exactly as the sender renders the send for a sample recipient (``review.render_sample``),
goes out through the channels the dispatcher would use (``wiring.build_channels``: the outbox, or SendGrid and FCM),
says so ("[Test]" before its subject, ``test: 1`` in its metadata, no delivery id for a webhook to match), and is
recorded in ``test_sends`` only: never a delivery row, so never counted in the campaign's progress.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from notifier.audience._rows import RecipientRecord, validate
from notifier.campaign import Campaign, load_campaign
from notifier.channels.base import EmailMessage, Message, PushMessage
from notifier.config import Settings
from notifier.errors import CampaignError, PreviewError, Problem, UserError
from notifier.events import Outcome
from notifier.ledger.models import CampaignSeed, TestSend
from notifier.planner import parse_send_key
from notifier.preview import find_sample
from notifier.render import Personal, Renderer
from notifier.review import Rendered, Sample, render_sample, samples
from notifier.studio import store
from notifier.wiring import build_channels

__all__ = ["CHANNELS", "TEST_PREFIX", "Seed", "TestSendResult", "seeds_of", "set_seeds",
           "test_send"]

log = logging.getLogger(__name__)

CHANNELS = ("email", "push")
TEST_PREFIX = "[Test] "
MAX_SEEDS = 50  # people of one's own, not an audience
_SEEDS = "seeds"  # where a seed's problem is located


@dataclass(frozen=True)
class Seed:
    """An address or push token of one of the campaign's own people."""

    channel: str
    address: str
    name: str | None = None
    locale: str | None = None


@dataclass(frozen=True)
class TestSendResult:
    """What happened to the test for one seed."""

    __test__ = False  # not a pytest class

    channel: str
    address: str
    outcome: str  # sent | failed
    provider_message_id: str | None = None
    error: str | None = None


# --- seeds ------------------------------------------------------------------------------------------------------


def seeds_of(session: Session, campaign_id: str) -> list[Seed]:
    """The campaign's seeds, in the order they were given."""
    rows = session.scalars(select(CampaignSeed).where(CampaignSeed.campaign_id == campaign_id)
                           .order_by(CampaignSeed.id))
    return [Seed(r.channel, r.address, r.name, r.locale) for r in rows]


def set_seeds(session: Session, campaign_id: str, seeds: Sequence[Seed]) -> None:
    """Replace the campaign's seeds (in the caller's transaction), each checked as the audience checks an address or
    a token; CampaignError naming every bad seed (``seeds[2].address``) and storing none."""
    problems: list[Problem] = []
    checked: list[Seed] = []
    if len(seeds) > MAX_SEEDS:
        problems.append(Problem(_SEEDS, None, _SEEDS, f"{len(seeds)} seeds; at most {MAX_SEEDS}"))
    for i, seed in enumerate(seeds):
        good = _checked(i, seed, problems)
        if good is not None and good not in checked:
            checked.append(good)
    if problems:
        raise CampaignError(problems)
    session.execute(delete(CampaignSeed).where(CampaignSeed.campaign_id == campaign_id))
    session.add_all([CampaignSeed(campaign_id=campaign_id, channel=s.channel, address=s.address, name=s.name,
                                  locale=s.locale) for s in checked])
    session.flush()
    log.info("campaign %s: %d seeds", campaign_id, len(checked))


def _checked(i: int, seed: Seed, problems: list[Problem]) -> Seed | None:
    """The seed as the audience would store it (address normalized, name cleaned), or None and a problem."""
    where = f"{_SEEDS}[{i}]"
    if seed.channel not in CHANNELS:
        problems.append(Problem(_SEEDS, i + 1, f"{where}.channel", f"{seed.channel!r} is not one of "
                                                                   f"{', '.join(CHANNELS)}"))
        return None
    raw = {"id": f"seed-{i + 1}", "name": seed.name, "locale": seed.locale, "timezone": "UTC",
           **({"email": seed.address} if seed.channel == "email" else {"push_tokens": [seed.address]})}
    record = validate(_SEEDS, i + 1, raw)
    if not isinstance(record, RecipientRecord):
        field = {"email": "address", "push_tokens": "address", None: "address"}.get(record.field, record.field)
        problems.append(Problem(_SEEDS, i + 1, f"{where}.{field}", record.reason))
        return None
    address = record.email if seed.channel == "email" else record.push_tokens[0]
    assert address is not None
    return Seed(seed.channel, address, record.name, record.locale)


# --- the test send ----------------------------------------------------------------------------------------------


def test_send(settings: Settings, session: Session, campaign_id: str, *, locale: str, send_key: str, channel: str,
              now: datetime) -> list[TestSendResult]:
    """Render the send for a sample recipient and send it to every seed of ``channel`` through the real transport;
    each attempt recorded in ``test_sends`` (in the caller's transaction)."""
    seeds = [s for s in seeds_of(session, campaign_id) if s.channel == channel]
    if not seeds:
        raise UserError(f"campaign {campaign_id}: no {channel} seeds to send a test to; add some first")
    with store.content_of(settings, campaign_id, store.stored_bundle(session, campaign_id)) as (
            path, templates_dir, locales_dir):
        campaign = load_campaign(path)
        renderer = Renderer(templates_dir, locales_dir, default_sender=settings.email_from)
        rendered = render_sample(renderer, campaign, _sample(campaign, locale, send_key, channel))
    rows = [TestSend(campaign_id=campaign_id, channel=channel, locale=locale, send_key=send_key, outcome="sending",
                     at=now) for _ in seeds]
    session.add_all(rows)
    session.flush()  # each row's id names its message (negative: never a delivery's)
    messages = [_message(campaign, rendered, seed, -row.id, send_key, channel, now) for seed, row in zip(
        seeds, rows, strict=True)]
    channels = build_channels(settings)
    try:
        results = {r.delivery_id: r for r in channels[channel].send(messages)}
    finally:
        for ch in channels.values():
            ch.close()
    out = []
    for seed, row in zip(seeds, rows, strict=True):
        result = results.get(-row.id)
        sent = result is not None and result.outcome == Outcome.SENT
        row.outcome = "sent" if sent else "failed"
        row.provider_message_id = result.provider_message_id if result is not None else None
        row.error = None if sent else (result.error if result is not None else "no answer from the channel")
        out.append(TestSendResult(channel, seed.address, row.outcome, row.provider_message_id, row.error))
    session.flush()
    log.info("campaign %s: test of %s in %s by %s: %d sent, %d failed", campaign_id, send_key, locale, channel,
             sum(r.outcome == "sent" for r in out), sum(r.outcome != "sent" for r in out))
    return out


test_send.__test__ = False  # type: ignore[attr-defined]  # not a pytest test where it is imported


def _sample(campaign: Campaign, locale: str, send_key: str, channel: str) -> Sample:
    """The sample of exactly this send in ``locale`` on ``channel``; PreviewError saying why there is none."""
    if channel not in campaign.channels:
        raise PreviewError(f"channel {channel}: the campaign's channels are {', '.join(campaign.channels)}")
    for sample in samples(campaign):
        if sample.locale == locale and sample.label == send_key and channel in sample.channels:
            return sample
    try:
        first = parse_send_key(send_key)[0]
    except TypeError:
        raise PreviewError(f"send {send_key!r} is not deadline@wave") from None
    return find_sample(campaign, locale, first.deadline, first.wave, channel)  # its error says why, or the nearest


def _personal(r: Rendered, seed: Seed) -> Personal:
    """The sample reader's fields, with the seed's own name when the seed list gives one ("Hi Marta")."""
    sample = r.sample.personal()
    return dataclasses.replace(sample, name=seed.name) if seed.name else sample


def _message(campaign: Campaign, r: Rendered, seed: Seed, message_id: int, send_key: str, channel: str,
             now: datetime) -> Message:
    """The rendered sample as a message to one seed, marked as a test; no unsubscribe link (no delivery to end)."""
    metadata = {"campaign_id": campaign.id, "send_key": send_key, "test": "1"}
    tags = (campaign.id, "test")
    if channel == "email":
        # As the dispatcher builds it: the variant's text, the (sample) recipient's fields filled by the transport.
        return EmailMessage(message_id, seed.address, seed.name, TEST_PREFIX + r.variant.subject, r.variant.text,
                            r.variant.html, _personal(r, seed), variant=("test", r.variant.key), tags=tags,
                            metadata=metadata,
                            sender=campaign.sender.from_header if campaign.sender else None,
                            reply_to=campaign.sender.reply_to if campaign.sender else None)
    expires = now + timedelta(hours=1)
    return PushMessage(message_id, (seed.address,), TEST_PREFIX + r.push.title, r.push.body, expires_at=expires,
                       collapse_key=f"{campaign.id}:test", metadata=metadata, tags=(f"{campaign.id}-test",),
                       ttl=expires - now, link=r.push.link or None)
