"""What the dashboard's pages show, read from the ledger and the campaign files: plain data, no HTML.

A campaign is either in the ledger (scheduled, paused, cancelled) or only a file in the campaigns folder (a
draft). The timeline of a scheduled campaign is its send groups, the truth of what goes out; a draft's is
planned for the time zones of its audience in the ledger (its countries, a channel present: the zones scheduling
would plan), or the sample zones of its locales when there is none.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notifier.campaign import SLUG, Campaign, parse_campaign, zone
from notifier.config import Settings, writable
from notifier.errors import CampaignError, NotFound, Problem
from notifier.ledger.models import CampaignRow, SendGroup, Suppression
from notifier.ledger.queries import audience_zones, campaign_of, get_campaign
from notifier.reports import ROWS_TO_COME, CampaignLine, CampaignStatus, ToCome, campaign_lines, campaign_status
from notifier.review import sample_place
from notifier.studio import store
from notifier.timeline import ZonePlans
from notifier.web.dashboard.chart import DeadlineMark, TimelineSend

MAX_ZONES = 400  # a draft's timeline plans at most this many of the audience's zones
MAX_FILE_BYTES = 256 * 1024  # a campaign file bigger than this is refused before it is parsed
RESERVED = frozenset({"new"})  # /campaigns/new is the upload page: no campaign may have that id


def could_be_campaign_id(name: str) -> bool:
    """Lowercase letters, digits, - and _, and not a word a dashboard path uses (``..``, a NUL or a slash never)."""
    return bool(SLUG.match(name)) and name not in RESERVED


def campaign_path(settings: Settings, campaign_id: str) -> Path:
    """The file of a campaign id; an id that could not be one names no campaign."""
    if not could_be_campaign_id(campaign_id):
        raise NotFound(f"no campaign {campaign_id[:80]!r}: an id is lowercase letters, digits, - and _")
    return store.campaign_file(settings, campaign_id)  # kept in the ledger: this machine's copy of it


def draft_ids(settings: Settings, scheduled: set[str]) -> list[str]:
    """Campaigns not scheduled yet: files of the campaigns folder, and campaigns of the studio (this machine's copy
    of the ledger's)."""
    found = set()
    for folder in (settings.campaigns_dir, settings.studio_dir / "campaigns"):
        if folder.is_dir():
            found |= {p.stem for p in folder.glob("*.yaml") if could_be_campaign_id(p.stem)}
    return sorted(found - scheduled)


@dataclass(frozen=True)
class CampaignCard:
    """One line of the campaigns page."""

    line: CampaignLine | None  # None: a draft, only a file
    campaign_id: str

    @property
    def state(self) -> str:
        return self.line.state if self.line else "draft"

    @property
    def phase(self) -> str:
        return self.line.phase if self.line else "draft"

    @property
    def percent(self) -> int:
        return self.line.percent if self.line else 0


def campaign_cards(session: Session, settings: Settings, to_come: ToCome = ROWS_TO_COME) -> list[CampaignCard]:
    store.sync(session, settings)  # a campaign another server saved in the studio is listed here too
    lines = campaign_lines(session, settings, to_come)
    known = {ln.campaign_id for ln in lines}
    return [*(CampaignCard(ln, ln.campaign_id) for ln in lines),
            *(CampaignCard(None, cid) for cid in draft_ids(settings, known))]


def file_text(settings: Settings, session: Session, campaign_id: str) -> str:
    """The campaign's file as it is now, else the copy the ledger scheduled."""
    path = campaign_path(settings, campaign_id)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    row = session.get(CampaignRow, campaign_id)
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}: neither a file in {settings.campaigns_dir} nor in "
                                 "the ledger")
    return row.spec


def file_changed(settings: Settings, row: CampaignRow | None) -> bool:
    """Whether the campaign's file says something else than the copy the ledger scheduled."""
    path = campaign_path(settings, row.id) if row is not None else None
    return path is not None and path.is_file() and path.read_text(encoding="utf-8") != row.spec  # type: ignore[union-attr]


def load(settings: Settings, session: Session, campaign_id: str) -> tuple[Campaign, CampaignRow | None]:
    """The campaign as its file says (or as scheduled, when the file is gone), and its ledger row."""
    store.sync(session, settings)  # this machine's copy of the campaigns kept in the ledger, up to date
    path = campaign_path(settings, campaign_id)
    row = session.get(CampaignRow, campaign_id)
    if path.is_file():
        return parse_campaign(path.read_text(encoding="utf-8"), str(path)), row
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}")
    return campaign_of(row), row


def save_file(settings: Settings, campaign: Campaign, text: str) -> Path:
    """Write a validated campaign's file into the campaigns folder, whole or not at all."""
    path = writable(settings.campaigns_dir) / campaign_path(settings, campaign.id).name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{campaign.id}.", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- a file with its problems next to its lines ----------------------------------------------------------------


@dataclass(frozen=True)
class AnnotatedLine:
    number: int
    text: str
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class Annotated:
    """An uploaded file's lines, each with the problems that name it; problems of no line or of other files
    (templates, catalogs) apart."""

    lines: tuple[AnnotatedLine, ...]
    elsewhere: tuple[Problem, ...]

    @property
    def count(self) -> int:
        return sum(len(ln.problems) for ln in self.lines) + len(self.elsewhere)


def annotate(text: str, source: str, error: CampaignError) -> Annotated:
    by_line: dict[int, list[Problem]] = defaultdict(list)
    elsewhere: list[Problem] = []
    rows = text.splitlines() or [""]
    for p in error.problems:
        if p.file == source and p.line is not None and 1 <= p.line <= len(rows):
            by_line[p.line].append(p)
        else:
            elsewhere.append(p)
    lines = tuple(AnnotatedLine(i, t, tuple(by_line.get(i, ()))) for i, t in enumerate(rows, start=1))
    return Annotated(lines, tuple(elsewhere))


# --- one campaign's page ---------------------------------------------------------------------------------------


POLL_MIN_MS, POLL_MAX_MS = 2_000, 30_000


@dataclass
class Progress:
    """Counts by state per send (wave), locale and channel; what failed and why."""

    status: CampaignStatus | None
    campaign: Campaign | None = None  # as scheduled: the one its send keys come from
    by_send: dict[str, dict[str, int]] = field(default_factory=dict)
    by_locale: dict[str, dict[str, int]] = field(default_factory=dict)
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    suppressions: dict[str, int] = field(default_factory=dict)  # reason → entries this campaign's events added
    took: float = 0.0  # seconds the read took

    @property
    def every_ms(self) -> int:
        """How long the page waits before it reads the counts again: 2 s, or ten times as long as the read took,
        up to 30 s. An open page then keeps the ledger busy a tenth of the time at most while a read takes under
        3 s (each open page alike)."""
        return min(POLL_MAX_MS, max(POLL_MIN_MS, round(self.took * 10_000)))

    @property
    def percent(self) -> int:
        return self.status.percent if self.status else 0


def progress(session: Session, campaign_id: str, in_ledger: bool, settings: Settings | None = None,
             to_come: ToCome = ROWS_TO_COME) -> Progress:
    """What the live part of a campaign's page shows; with ``settings``, whether its copy blocks it."""
    if not in_ledger:
        return Progress(None)
    began = time.perf_counter()
    status = campaign_status(session, campaign_id, settings, to_come)
    p = Progress(status, campaign_of(get_campaign(session, campaign_id)))
    for send, locale, channel, state, n in status.breakdown:
        for table, key in ((p.by_send, send), (p.by_locale, locale), (p.by_channel, channel)):
            row = table.setdefault(key, {})
            row[state] = row.get(state, 0) + n
        p.totals[state] = p.totals.get(state, 0) + n
    p.suppressions = dict(session.execute(
        select(Suppression.reason, func.count()).where(Suppression.campaign_id == campaign_id)
        .group_by(Suppression.reason).order_by(Suppression.reason)).all())
    p.took = time.perf_counter() - began
    return p


def timeline(session: Session, campaign: Campaign, in_ledger: bool) -> tuple[list[TimelineSend], list[DeadlineMark]]:
    """Every send of every zone, under each deadline it carries, and each deadline's instant in each zone."""
    sends: list[TimelineSend] = []
    if in_ledger:
        q = (select(SendGroup.timezone, SendGroup.deadlines, SendGroup.wave, SendGroup.send_at,
                    SendGroup.materialized_upto)
             .where(SendGroup.campaign_id == campaign.id).order_by(SendGroup.send_at, SendGroup.timezone))
        for tz, deadlines, wave, at, done in session.execute(q):
            sends += [TimelineSend(tz, d, wave, at, done > 0) for d in deadlines]
    else:
        plans = ZonePlans(campaign)
        for tz in draft_zones(session, campaign):
            for send in plans(tz).sends:
                sends += [TimelineSend(tz, i.deadline, i.wave, send.send_at, False) for i in send.items]
    zones = sorted({s.zone for s in sends})
    marks = [DeadlineMark(d.id, tz, d.instant_in(zone(tz))) for d in campaign.deadlines for tz in zones]
    return sends, marks


def draft_zones(session: Session, campaign: Campaign) -> list[str]:
    """The zones scheduling would plan: its audience's in the ledger (at most MAX_ZONES), else each locale's sample
    zone (a country of the locale's, among the campaign's countries where one speaks it)."""
    return (audience_zones(session, campaign, MAX_ZONES)
            or sorted({sample_place(loc, campaign.countries).zone for loc in campaign.locales}))

