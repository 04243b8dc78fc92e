"""The approved copy against the copy on disk: whether a scheduled campaign may be sent, decided in one place.

``campaign schedule`` approves a campaign's copy (:class:`notifier.render.Content`: its templates and the
translations of its catalogs). When any of them changes afterwards, the campaign is blocked: the dispatcher sends
nothing of it, and ``status``, ``campaign list`` and the dashboard say so, all from :func:`check`, until it is
scheduled (approved) again.

Reading and digesting the copy costs about a millisecond per campaign, and a live page asks every few seconds: the
digest is kept per campaign until a file of it changes. A file counts as changed when its inode, size, mtime or
ctime does (every write moves ctime, which no tool can set back), or when a template appears or goes.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from notifier.campaign import Campaign
from notifier.i18n import catalog_path
from notifier.ledger.models import CampaignRow
from notifier.ledger.queries import campaign_of, changed_files
from notifier.render import Content
from notifier.words import BLOCKED

__all__ = ["BLOCKED", "Approval", "check", "copy_on_disk"]



@dataclass(frozen=True)
class Approval:
    """A scheduled campaign's copy as it is on disk now, against the copy its schedule approved."""

    campaign_id: str
    fingerprint: str  # of the copy on disk now: what a message sent now is made of
    changed: tuple[str, ...] = ()  # "templates/x/push_body.txt: changed", … ; empty: the approved copy

    @property
    def blocked(self) -> bool:
        return bool(self.changed)

    @property
    def command(self) -> str:
        return f"notifier campaign schedule {self.campaign_id}"

    @property
    def refusal(self) -> str:
        """One line for the dispatcher's log and ``dispatch``'s error (empty when not blocked)."""
        if not self.blocked:
            return ""
        return (f"{BLOCKED} ({'; '.join(self.changed)}); review it (notifier preview {self.campaign_id} "
                f"--gallery DIR), then: {self.command}")

    def as_dict(self) -> dict[str, object] | None:
        """What ``--json`` says of it: None, or the reason, the changed files and the command that approves."""
        if not self.blocked:
            return None
        return {"reason": BLOCKED, "changed": list(self.changed), "command": self.command}


def check(row: CampaignRow, templates_dir: Path, locales_dir: Path) -> Approval:
    """The one verdict on a scheduled campaign's copy: blocked when the copy on disk is not the approved one."""
    current = copy_on_disk(campaign_of(row), templates_dir, locales_dir)
    if current.fingerprint == row.content_fingerprint:
        return Approval(row.id, current.fingerprint)
    changed = changed_files(row.content_manifest or {}, current.manifest) or ("no approved copy recorded",)
    return Approval(row.id, current.fingerprint, changed)


_cache: dict[tuple[str, ...], tuple[tuple[object, ...], Content]] = {}
_lock = threading.Lock()


def copy_on_disk(campaign: Campaign, templates_dir: Path, locales_dir: Path) -> Content:
    """``Content.of`` the campaign, read again only when one of its files changed since the last read."""
    key = (str(templates_dir), str(locales_dir), campaign.id, campaign.templates, *campaign.locales)
    stamp = _stamp(campaign, Path(templates_dir), Path(locales_dir))
    with _lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    content = Content.of(campaign, templates_dir, locales_dir)
    with _lock:
        if len(_cache) > 256:  # campaigns come and go; a long-lived process keeps only the recent ones
            _cache.clear()
        _cache[key] = (stamp, content)
    return content


def _stamp(campaign: Campaign, templates_dir: Path, locales_dir: Path) -> tuple[object, ...]:
    """What the files of the campaign's copy are now, without reading them."""
    folder = templates_dir / campaign.templates
    paths = [p for p in sorted(folder.rglob("*")) if p.is_file()]  # what Content.of reads
    paths += [catalog_path(locales_dir, locale, domain=campaign.id) for locale in campaign.locales]
    stamp: list[object] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stamp.append((str(path), None))
            continue
        stamp.append((str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(stamp)
