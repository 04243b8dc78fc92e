"""Seeing, trying and sending a studio campaign, for the pages and the JSON API: previews on a renderer kept warm,
the audience's uploads, the dry run and the fast-forward, seeds and test sends, and scheduling. Its functions are
part of :mod:`notifier.studio.service` (which imports them), and take the server's ``Web`` first like the rest.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from notifier.campaign import Campaign
from notifier.errors import CampaignError, NotFound, PreviewError, RequestRefused, UserError
from notifier.ledger.db import transaction
from notifier.studio import uploads
from notifier.studio.service import STATE_OF_ACTION, campaign_of_id, checked_id, checked_locale, on_disk, synced

_fast_forwards: set[str] = set()  # campaigns being fast-forwarded by this process (one at a time each)
_busy = threading.Lock()

if TYPE_CHECKING:
    from notifier.render import Renderer
    from notifier.studio.dryrun import DryRun, FastForward
    from notifier.studio.testsend import Seed, TestSendResult
    from notifier.web.requests import Web


# --- seeing it as the recipient will ----------------------------------------------------------------------------


def _renderer(web: Web) -> Renderer:
    from notifier.render import Renderer

    s = web.settings
    return Renderer(s.templates_dir, s.locales_dir, default_sender=s.email_from, studio_dir=s.studio_dir)


# One renderer per configuration, kept warm across previews (compiling the templates is most of a cold preview);
# a campaign's environments and variants are dropped when its file or copy changed since its last preview.
_PREVIEWS: dict[tuple[str, ...], tuple[Renderer, dict[str, tuple[str, str]]]] = {}
_PREVIEWS_LOCK = threading.Lock()


def _preview_renderer(web: Web, campaign: Campaign, text: str) -> Renderer:
    from notifier.approval import copy_on_disk

    s = web.settings
    key = (str(s.templates_dir), str(s.locales_dir), str(s.studio_dir), s.email_from)
    copy = copy_on_disk(campaign, *s.copy_dirs(campaign.id)).fingerprint  # cheap: read again only when files change
    with _PREVIEWS_LOCK:
        if key not in _PREVIEWS:
            if len(_PREVIEWS) > 16:
                _PREVIEWS.clear()
            _PREVIEWS[key] = (_renderer(web), {})
        renderer, seen = _PREVIEWS[key]
        if seen.get(campaign.id) != (text, copy):
            renderer.forget(campaign.id)
            seen[campaign.id] = (text, copy)
    return renderer


def preview_choices(web: Web, campaign_id: str) -> dict[str, Any]:
    """What a preview may show: the locales, each send (in words) and the channels."""
    from notifier.review import samples
    from notifier.words import Words

    campaign = campaign_of_id(web, campaign_id)
    keys = dict.fromkeys(s.label for s in samples(campaign))
    return {"locales": list(campaign.locales), "channels": list(campaign.channels),
            "sends": [{"send_key": key, "words": Words().send(campaign, key)} for key in keys]}


def preview(web: Web, campaign_id: str, *, locale: str, send_key: str, channel: str,
            recipient_id: str | None = None) -> dict[str, Any]:
    """One message rendered as the sender renders it, for the sample reader of the locale or a real recipient."""
    from notifier.ledger.models import Recipient
    from notifier.preview import recipient_sample
    from notifier.review import limits, push_warnings, render_sample, samples

    campaign, text = on_disk(web, campaign_id)
    checked_locale(campaign, locale)
    if channel not in campaign.channels:
        raise PreviewError(f"channel {channel[:20]!r}: the campaign's channels are {', '.join(campaign.channels)}")
    found = [s for s in samples(campaign) if s.locale == locale and s.label == send_key]
    sample = next((s for s in found if channel in s.channels), None)
    if sample is None:
        raise PreviewError(f"send {send_key[:200]!r} is never sent in {locale} on {channel}"
                           if found else f"the campaign has no send {send_key[:200]!r} (see the preview's choices)")
    personal = None
    if recipient_id:
        with web.sessions() as s:
            recipient = s.scalars(select(Recipient).where(Recipient.id == recipient_id)).first()
            if recipient is None:
                raise NotFound(f"no recipient {recipient_id[:80]!r}")
            sample, personal = recipient_sample(campaign, sample, recipient, locale)
    answer: dict[str, Any] = {"channel": channel, "locale": locale, "send_key": send_key, "subject": "", "html": "",
                              "text": "", "title": "", "body": "", "link": None, "problems": []}
    try:
        r = render_sample(_preview_renderer(web, campaign, text), campaign, sample, personal)
    except UserError as exc:
        return {**answer, "problems": [str(exc)]}
    if channel == "email":
        answer.update(subject=r.email.subject, html=r.email.html, text=r.email.text)
    else:
        answer.update(title=r.push.title, body=r.push.body, link=r.push.link)
    answer["problems"] = [*limits(r, campaign), *push_warnings(r)]
    return answer


# --- the audience -----------------------------------------------------------------------------------------------


def sniff_upload(web: Web, head: bytes, file_name: str, mapping: Mapping[str, str] | None) -> uploads.Sniffed:
    return uploads.sniff(head, file_name, mapping)


def start_upload(web: Web, spool: Path, file_name: str, fmt: str | None, mapping: Mapping[str, str] | None) -> str:
    """Take over a spooled file and import it in the background; its id, to follow it. Without a mapping, the
    columns are mapped as :func:`sniff_upload` suggests (what the page preselects)."""
    if mapping is None:
        with spool.open("rb") as f:
            head = f.read(64 * 1024)
        suggested = uploads.sniff(head, file_name).suggestions
        mapping = {column: field or "" for column, field in suggested.items()}  # "": a column with no guess is left out
    return uploads.start_upload(web.sessions, web.settings, spool, file_name=file_name, fmt=fmt,
                                mapping=mapping, now=web.now())


def upload_status(web: Web, upload_id: str) -> uploads.UploadStatus:
    """Where an upload stands; one whose server died mid-import is taken over here once it has stalled (the browser
    that polls it, or any other, finds it moving again)."""
    with web.sessions() as s:
        status = uploads.upload_status(s, upload_id)
    if status.state in ("waiting", "importing") and uploads.resume_uploads(web.sessions, web.settings, web.now()):
        with web.sessions() as s:
            status = uploads.upload_status(s, upload_id)
    return status


def rejects_csv(web: Web, upload_id: str) -> Iterator[str]:
    """The rejected rows as CSV lines (an unknown upload is refused now, not in the middle of a download)."""
    upload_status(web, upload_id)
    return _rejects(web, upload_id)


def _rejects(web: Web, upload_id: str) -> Iterator[str]:
    with web.sessions() as s:
        yield from uploads.rejects_csv(s, upload_id)


# --- trying it --------------------------------------------------------------------------------------------------


def dry_run(web: Web, campaign_id: str) -> DryRun:
    """What scheduling the campaign now would send to today's audience, and what not, and why."""
    from notifier.studio import dryrun

    campaign = campaign_of_id(web, campaign_id)
    with web.sessions() as s:
        return dryrun.dry_run(s, campaign, web.now())


def fast_forward(web: Web, campaign_id: str) -> FastForward:
    """The campaign played to its end on a simulated clock, in a ledger of its own (one run per campaign at once)."""
    from notifier.studio import dryrun

    campaign_of_id(web, campaign_id)
    with _busy:
        if campaign_id in _fast_forwards:
            raise RequestRefused(409, f"a fast-forward of {campaign_id!r} is running already: wait for it")
        _fast_forwards.add(campaign_id)
    try:
        synced(web)
        folder = Path(web.settings.studio_dir) / "fast-forward" / campaign_id
        return dryrun.fast_forward(web.settings, web.sessions, campaign_id, folder, start=web.now())
    finally:
        with _busy:
            _fast_forwards.discard(campaign_id)


def seeds(web: Web, campaign_id: str) -> list[Seed]:
    from notifier.studio.testsend import seeds_of

    campaign_of_id(web, campaign_id)
    with web.sessions() as s:
        return seeds_of(s, campaign_id)


def set_seeds(web: Web, campaign_id: str, seeds: Sequence[Mapping[str, Any]]) -> None:
    """The campaign's seed list (addresses and push tokens of its testers), replaced whole."""
    from notifier.studio import testsend

    campaign_of_id(web, campaign_id)
    values = [testsend.Seed(channel=str(m.get("channel") or ""), address=str(m.get("address") or ""),
                            name=m.get("name") or None, locale=m.get("locale") or None) for m in seeds]
    with transaction(web.sessions) as s:
        testsend.set_seeds(s, campaign_id, values)


def test_send(web: Web, campaign_id: str, *, locale: str, send_key: str, channel: str) -> list[TestSendResult]:
    """One message to each seed of the channel, through the real transport, marked as a test, never counted."""
    from notifier.studio import testsend

    checked_locale(campaign_of_id(web, campaign_id), locale)
    synced(web)
    with transaction(web.sessions) as s:
        return testsend.test_send(web.settings, s, campaign_id, locale=locale, send_key=send_key, channel=channel,
                                  now=web.now())


# --- sending it -------------------------------------------------------------------------------------------------


def schedule(web: Web, campaign_id: str) -> None:
    """Approve the campaign's copy as this machine has it and plan its sends (the CLI's ``campaign schedule``): a
    CampaignError with every problem of the gate, or of a campaign that would send nothing."""
    from notifier.ledger import queries
    from notifier.planner import outlook, plan_zone
    from notifier.render import Content
    from notifier.results import recount_funnel
    from notifier.review import review
    from notifier.team import approvals
    from notifier.zones import every_zone

    campaign, text = on_disk(web, campaign_id)
    problems = review(campaign, _renderer(web))
    if problems:  # named by the campaign's own paths (locales/id/LC_MESSAGES/x.po:24), not this server's folders
        root = f"{web.settings.studio_dir}/"
        raise CampaignError([dataclasses.replace(p, file=p.file.removeprefix(root)) for p in problems])
    outlook(campaign, every_zone(), web.now()).refuse_if_empty()  # a campaign that sends nothing: as the CLI says
    content = Content.of(campaign, *web.settings.copy_dirs(campaign_id))
    with transaction(web.sessions) as s:
        approvals.gate(s, web.settings, campaign, text, content.fingerprint)  # four eyes
        queries.schedule(s, campaign, text, web.now(), content, plan_zone)
        recount_funnel(s, campaign.id)  # actions recorded before count in its Results


def set_state(web: Web, campaign_id: str, action: str) -> None:
    """pause | resume | cancel a scheduled campaign (cancelling skips every message not sent yet)."""
    from notifier.ledger import queries
    from notifier.ledger.models import CampaignState

    if action not in STATE_OF_ACTION:
        raise NotFound(f"no such action: {action[:40]!r} (pause, resume or cancel)")
    with transaction(web.sessions) as s:
        queries.set_state(s, checked_id(campaign_id), CampaignState(STATE_OF_ACTION[action]), web.now())


def progress(web: Web, campaign_id: str) -> dict[str, Any]:
    """How far a scheduled campaign has come, in messages (test sends are never in it)."""
    from notifier.reports import campaign_status

    with web.sessions() as s:
        status = campaign_status(s, checked_id(campaign_id), web.settings)
    return {**status.as_dict(), "percent": status.percent}
