"""Four eyes: a campaign version (its YAML, templates and translations) must be approved by an approver who did not
change it before it can be scheduled; any change after approval needs approval again.

It applies once the ledger has a team (``people``) to campaigns of the categories in ``NOTIFIER_FOUR_EYES``
(service announcements unless set). Who changed a campaign since its last approval is read from its stored versions:
every edit through the dashboard or the API is a version naming its author (``store.save_version``), a campaign
kept in files included (its first edit in the dashboard stores it). An approval names a stored version: approving
a campaign kept in files stores its files as a version of nobody's first. What scheduling checks (:func:`gate`) is
the exact YAML and copy being scheduled against the latest approval, whichever way (page, API, CLI) it is
scheduled: an older approval, superseded by a later one, no longer counts.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.campaign import Campaign
from notifier.config import Settings
from notifier.errors import CampaignStateError, RequestRefused
from notifier.ledger import audit
from notifier.ledger.models import ApprovalRow, CampaignVersion, Person
from notifier.studio import store
from notifier.team.people import Member, has_team
from notifier.team.roles import Can, refuse_unless

MAX_DIFF = 200_000  # characters of a diff shown


def schedules_digest(spec: str, content_fingerprint: str) -> str:
    """What scheduling a version stores: its YAML's text and its copy's fingerprint (``render.Content``)."""
    return hashlib.sha256(f"{spec.removeprefix(chr(0xFEFF))}\0{content_fingerprint}".encode()).hexdigest()


@dataclass(frozen=True)
class Status:
    """Where a campaign stands with four eyes."""

    campaign_id: str
    required: bool  # its category needs approval and the ledger has a team
    version: int | None  # its latest stored version; None: kept in files (approving stores it)
    fingerprint: str  # of the files shown (store.fingerprint): what an approval from the page covers
    approved_version: int | None  # the last version approved
    approved_by: str | None
    approved_at: datetime | None
    editors: tuple[str, ...]  # who changed it since that approval (emails), from the audit log
    editor_ids: frozenset[int]
    diff: str  # since the last approved version (everything, when none was)

    @property
    def current(self) -> bool:
        """The latest version is approved."""
        return self.version is not None and self.approved_version == self.version

    def as_dict(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "required": self.required, "version": self.version,
                "fingerprint": self.fingerprint,
                "approved_version": self.approved_version, "approved_by": self.approved_by,
                "approved_at": self.approved_at.isoformat() if self.approved_at else None,
                "current": self.current, "changed_by": list(self.editors), "diff": self.diff}


def required(session: Session, settings: Settings, campaign: Campaign) -> bool:
    return campaign.category in settings.four_eyes and has_team(session)


def _last_approval(session: Session, campaign_id: str) -> ApprovalRow | None:
    return session.scalars(select(ApprovalRow).where(ApprovalRow.campaign_id == campaign_id)
                           .order_by(ApprovalRow.version.desc()).limit(1)).first()


def _editors(session: Session, campaign_id: str, since: int, upto: int | None) -> dict[int, str]:
    """The people who saved a version after version ``since`` and up to ``upto`` (the one to approve): person id
    -> email. Every edit through the dashboard or the API is a version naming its author (``store.save_version``),
    so no way of editing is left out; versions of nobody's (a command, an approval storing files) name no one."""
    if upto is None:
        return {}
    rows = session.execute(select(Person.id, Person.email).join(CampaignVersion, CampaignVersion.author == Person.id)
                           .where(CampaignVersion.campaign_id == campaign_id, CampaignVersion.version > since,
                                  CampaignVersion.version <= upto).distinct())
    return {person_id: email for person_id, email in rows}


def status(session: Session, settings: Settings, campaign_id: str, *, with_diff: bool = True) -> Status:
    """The campaign's approval: its latest version, the last one approved, who changed it since, and the diff
    (empty without ``with_diff``: a page that polls needs only the verdict)."""
    latest = store.latest_version(session, campaign_id)
    last = _last_approval(session, campaign_id)
    new = store.read_bundle(session, campaign_id) if latest else store.bundle_from_disk(settings, campaign_id)
    old = store.read_bundle(session, campaign_id, last.version) if last and with_diff else {}
    editors = _editors(session, campaign_id, last.version if last else 0, latest.version if latest else None)
    by = session.get(Person, last.approved_by) if last else None
    return Status(campaign_id, required(session, settings, store.campaign_of(new)), latest.version if latest else None,
                  store.fingerprint(new), last.version if last else None, by.email if by else None,
                  last.approved_at if last else None, tuple(sorted(editors.values())), frozenset(editors),
                  diff(old, new) if with_diff else "")


def diff(old: store.Bundle, new: store.Bundle) -> str:
    """A unified diff of every file that changed (a binary file: one line saying so), cut at MAX_DIFF."""
    out: list[str] = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a == b:
            continue
        try:
            lines_a = a.decode("utf-8").splitlines(keepends=True) if a is not None else []
            lines_b = b.decode("utf-8").splitlines(keepends=True) if b is not None else []
        except UnicodeDecodeError:
            out.append(f"binary file {path} {'added' if a is None else 'removed' if b is None else 'changed'}\n")
            continue
        out.extend(difflib.unified_diff(lines_a, lines_b, f"a/{path}" if a is not None else "/dev/null",
                                        f"b/{path}" if b is not None else "/dev/null"))
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
    text = "".join(out)
    return text if len(text) <= MAX_DIFF else text[:MAX_DIFF] + "\n[... the diff goes on]\n"


def approve(session: Session, settings: Settings, campaign_id: str, approver: Member, now: datetime,
            version: int | None = None, fingerprint: str | None = None) -> Status:
    """Approve the campaign's latest version: ``version`` or ``fingerprint``, when given, must be it (the one the
    approver read; 409 when a newer one was saved). Refused (409) to whoever saved a version since the last approval;
    approving it again changes nothing."""
    refuse_unless(approver.role, Can.APPROVE)
    latest = store.latest_version(session, campaign_id)
    if latest is None:  # kept in files: stored as a version of nobody's, so the approval names what it covers
        latest = store.save_version(session, campaign_id, store.bundle_from_disk(settings, campaign_id), now=now,
                                    origin="approval")
    if (version is not None and version != latest.version) or (fingerprint and fingerprint != latest.fingerprint):
        raise RequestRefused(409, f"campaign {campaign_id!r}: version {latest.version} was saved after the one you "
                                  "read; read the new changes, then approve")
    last = _last_approval(session, campaign_id)
    if approver.id in _editors(session, campaign_id, last.version if last else 0, latest.version):
        raise RequestRefused(409, f"you changed campaign {campaign_id!r} since its last approval: another "
                                  "approver must approve it (four eyes)")
    if last is None or last.version != latest.version:
        bundle = store.read_bundle(session, campaign_id, latest.version)
        session.add(ApprovalRow(campaign_id=campaign_id, version=latest.version, fingerprint=latest.fingerprint,
                                schedules=_schedules(bundle), approved_by=approver.id, approved_at=now))
        session.flush()
        audit.record(session, "approve", campaign_id=campaign_id, at=now,
                     detail={"version": latest.version, "fingerprint": latest.fingerprint,
                             "diff": diff(store.read_bundle(session, campaign_id, last.version) if last else {},
                                          bundle)})
    return status(session, settings, campaign_id)


def _schedules(bundle: store.Bundle) -> str:
    from notifier.render import Content

    campaign = store.campaign_of(bundle)
    with store.unpacked(bundle) as u:
        assert u.campaign_file is not None
        content = Content.of(campaign, u.templates_dir, u.locales_dir)
        return schedules_digest(u.campaign_file.read_text(encoding="utf-8"), content.fingerprint)


def gate(session: Session, settings: Settings, campaign: Campaign, spec: str, content_fingerprint: str) -> None:
    """Refuse (409) to schedule a campaign that needs four eyes unless an approval covers exactly this YAML and
    copy. Call it in the scheduling transaction."""
    if not required(session, settings, campaign):
        return
    last = _last_approval(session, campaign.id)  # only the latest approval counts: an older one was superseded
    if last is None or last.schedules != schedules_digest(spec, content_fingerprint):
        raise CampaignStateError(
            f"campaign {campaign.id!r} is a {campaign.category} announcement: this version needs an approver's "
            f"approval before it is scheduled (four eyes): /campaigns/{campaign.id}/approval")
