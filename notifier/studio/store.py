"""Campaign versions in the ledger: the one place every server and worker reads a campaign made in the studio.

A campaign's files (its YAML, templates and catalogs) are a :data:`Bundle`, keyed by the paths of the project's
layout, so ``campaign export`` writes what a team keeps in git and ``campaign import`` reads it back byte for byte.
Each save that changes a byte is a new version (1, 2, ...); nothing is ever rewritten. A machine works from its own
copy: :func:`sync` writes each stored campaign's latest version under ``NOTIFIER_STUDIO_DIR`` (only the files that
changed, each atomically), and the file-based code (the renderer, the copy's approval) finds it there through
:func:`content_dirs`. Campaigns never stored (the shipped one, ``campaign new``) keep living in the settings' folders.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from notifier.campaign import Campaign, parse_campaign
from notifier.config import STORED_MARK, Settings
from notifier.errors import NotFound, UserError
from notifier.i18n import posix
from notifier.ledger import audit
from notifier.ledger.models import CampaignFile, CampaignVersion

Bundle = dict[str, bytes]

MAX_FILES = 200  # a campaign is a YAML, a few templates and a catalog per locale
MAX_FILE_BYTES = 1024 * 1024
MAX_BUNDLE_BYTES = 8 * 1024 * 1024
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,99}")
_MARK = STORED_MARK


@dataclass(frozen=True)
class Version:
    """One stored version of a campaign's files."""

    campaign_id: str
    version: int
    fingerprint: str
    created_at: datetime
    origin: str


@dataclass(frozen=True)
class Unpacked:
    """A bundle written out to a folder, in the project's layout."""

    root: Path
    campaigns_dir: Path
    templates_dir: Path
    locales_dir: Path
    campaign_file: Path | None


def fingerprint(bundle: Mapping[str, bytes]) -> str:
    """A digest of every path and its bytes, in path order."""
    digest = hashlib.sha256()
    for path in sorted(bundle):
        data = bundle[path]
        digest.update(f"{path}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def check_bundle(bundle: Mapping[str, bytes], source: str = "bundle") -> str:
    """The campaign id of a well-formed bundle, or a UserError naming the path that is not: one campaign's YAML,
    paths of the layout only (no ``..``, no absolute path, no hidden file), sizes bounded."""
    yamls = [p for p in bundle if p.startswith("campaigns/")]
    if len(yamls) != 1 or not yamls[0].endswith(".yaml"):
        raise UserError(f"{source}: a campaign's files hold exactly one campaigns/<id>.yaml (found "
                        f"{', '.join(yamls) or 'none'})")
    campaign_id = yamls[0].removeprefix("campaigns/").removesuffix(".yaml")
    if not _ID.fullmatch(campaign_id):
        raise UserError(f"{source}: {yamls[0]}: a campaign id is 1 to 63 of a-z, 0-9 and '-'")
    if len(bundle) > MAX_FILES:
        raise UserError(f"{source}: {len(bundle)} files; a campaign has at most {MAX_FILES}")
    total = 0
    for path, data in bundle.items():
        _check_path(path, campaign_id, source)
        if len(data) > MAX_FILE_BYTES:
            raise UserError(f"{source}: {path}: {len(data)} bytes; a file may be at most {MAX_FILE_BYTES // 1024} KiB")
        total += len(data)
    if total > MAX_BUNDLE_BYTES:
        raise UserError(f"{source}: {total} bytes in all; a campaign may be at most {MAX_BUNDLE_BYTES // 2**20} MiB")
    return campaign_id


def _check_path(path: str, campaign_id: str, source: str) -> None:
    parts = PurePosixPath(path).parts
    allowed = (
        (len(parts) == 2 and parts[0] == "campaigns")
        or (len(parts) >= 3 and parts[0] == "templates")
        or (parts == ("locales", f"{campaign_id}.pot"))
        or (len(parts) == 4 and parts[0] == "locales" and parts[2] == "LC_MESSAGES" and parts[3] == f"{campaign_id}.po")
    )
    if not allowed or "\\" in path or any(not _PART.fullmatch(part) for part in parts) or len(parts) > 8:
        raise UserError(f"{source}: {path!r} is not a file of campaign {campaign_id!r} (campaigns/{campaign_id}.yaml, "
                        f"templates/<folder>/..., locales/{campaign_id}.pot, locales/<locale>/LC_MESSAGES/"
                        f"{campaign_id}.po)")


def campaign_of(bundle: Mapping[str, bytes]) -> Campaign:
    """The campaign of a bundle's YAML (a located CampaignError when it is not valid)."""
    campaign_id = check_bundle(bundle)
    path = f"campaigns/{campaign_id}.yaml"
    try:
        text = bundle[path].decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_campaign(text, path)


# --- the ledger -------------------------------------------------------------------------------------------------


def save_version(session: Session, campaign_id: str, bundle: Mapping[str, bytes], *, now: datetime,
                 origin: str = "studio", author: int | None = None) -> Version:
    """Store ``bundle`` as the campaign's next version, saved by the person ``author`` (None: a command); the
    latest one when nothing changed."""
    found = check_bundle(bundle)
    if found != campaign_id:
        raise UserError(f"campaigns/{found}.yaml: these files are campaign {found!r}, not {campaign_id!r}")
    digest = fingerprint(bundle)
    latest = latest_version(session, campaign_id)
    if latest is not None and latest.fingerprint == digest:
        return latest
    row = CampaignVersion(campaign_id=campaign_id, version=(latest.version if latest else 0) + 1,
                          fingerprint=digest, origin=origin, created_at=now, author=author)
    session.add(row)
    session.flush()
    session.add_all(CampaignFile(version_id=row.id, path=path, data=bytes(data)) for path, data in bundle.items())
    session.flush()
    # Every version's line in the audit log, with what it changed: however it was saved, it is never left out.
    from notifier.team.approvals import diff

    action = "import" if origin in ("import", "approval") else "edit" if latest else "create"
    audit.record(session, action, campaign_id=campaign_id, at=now, detail={
        "version": row.version, "origin": origin,
        "diff": diff(read_bundle(session, campaign_id, latest.version) if latest else {}, bundle)})
    return _version(row)


def _version(row: CampaignVersion) -> Version:
    return Version(row.campaign_id, row.version, row.fingerprint, row.created_at, row.origin)


def _latest_row(session: Session, campaign_id: str) -> CampaignVersion | None:
    return session.scalars(select(CampaignVersion).where(CampaignVersion.campaign_id == campaign_id)
                           .order_by(CampaignVersion.version.desc()).limit(1)).first()


def latest_version(session: Session, campaign_id: str) -> Version | None:
    row = _latest_row(session, campaign_id)
    return None if row is None else _version(row)


def versions(session: Session, campaign_id: str) -> list[Version]:
    """Every version of a campaign, newest first."""
    rows = session.scalars(select(CampaignVersion).where(CampaignVersion.campaign_id == campaign_id)
                           .order_by(CampaignVersion.version.desc()))
    return [_version(row) for row in rows]


def read_bundle(session: Session, campaign_id: str, version: int | None = None) -> Bundle:
    """The files of a version (default: the latest)."""
    query = select(CampaignVersion).where(CampaignVersion.campaign_id == campaign_id)
    if version is not None:
        query = query.where(CampaignVersion.version == version)
    row = session.scalars(query.order_by(CampaignVersion.version.desc()).limit(1)).first()
    if row is None:
        what = f"version {version} of campaign {campaign_id!r}" if version else f"campaign {campaign_id!r}"
        raise NotFound(f"no {what} in the ledger")
    return {f.path: f.data for f in session.scalars(select(CampaignFile).where(CampaignFile.version_id == row.id))}


def stored_campaigns(session: Session) -> list[str]:
    return list(session.scalars(select(CampaignVersion.campaign_id).distinct().order_by(CampaignVersion.campaign_id)))


def _latest_of_each(session: Session) -> dict[str, tuple[int, str]]:
    latest = (select(CampaignVersion.campaign_id, func.max(CampaignVersion.version).label("v"))
              .group_by(CampaignVersion.campaign_id).subquery())
    rows = session.execute(select(CampaignVersion.campaign_id, CampaignVersion.version, CampaignVersion.fingerprint)
                           .join(latest, (latest.c.campaign_id == CampaignVersion.campaign_id)
                                 & (latest.c.v == CampaignVersion.version)))
    return {cid: (v, fp) for cid, v, fp in rows}


# --- this machine's copy ----------------------------------------------------------------------------------------


def sync(session: Session, settings: Settings) -> list[str]:
    """Write each stored campaign's latest version under ``settings.studio_dir``; the ids whose files changed.
    One query when nothing changed (a version mark beside each YAML), so a worker may call it every tick."""
    root = Path(settings.studio_dir)
    changed = []
    for campaign_id, (version, digest) in _latest_of_each(session).items():
        mark = root / "campaigns" / f"{campaign_id}{_MARK}"
        if _read(mark) == f"{version} {digest}":
            continue
        bundle = read_bundle(session, campaign_id, version)
        _write_bundle(root, campaign_id, bundle)
        _atomic_write(mark, f"{version} {digest}".encode())
        changed.append(campaign_id)
    return changed


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _write_bundle(root: Path, campaign_id: str, bundle: Mapping[str, bytes]) -> None:
    """The bundle's files under ``root``, each replaced atomically when its bytes differ; files of the campaign
    that the bundle no longer has (a locale dropped, a template removed) are removed."""
    campaign = campaign_of(bundle)
    for path, data in bundle.items():
        target = root / path
        if not target.is_file() or target.read_bytes() != data:
            _atomic_write(target, data)
    folder = root / "templates" / campaign.templates
    old = {p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()
    old |= set((root / "locales").glob(f"*/LC_MESSAGES/{campaign_id}.po"))
    for path in old - {root / p for p in bundle}:
        path.unlink(missing_ok=True)


def _atomic_write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_stored(settings: Settings, campaign_id: str) -> bool:
    """Whether this machine holds the campaign from the ledger (after :func:`sync`)."""
    return (Path(settings.studio_dir) / "campaigns" / f"{campaign_id}{_MARK}").is_file()


def content_dirs(settings: Settings, campaign_id: str) -> tuple[Path, Path]:
    """(templates folder, locales folder) this machine reads the campaign's copy from."""
    return settings.copy_dirs(campaign_id)


def campaign_file(settings: Settings, campaign_id: str) -> Path:
    """The YAML this machine reads for ``campaign_id``."""
    if is_stored(settings, campaign_id):
        return Path(settings.studio_dir) / "campaigns" / f"{campaign_id}.yaml"
    return Path(settings.campaigns_dir) / f"{campaign_id}.yaml"


def stored_bundle(session: Session, campaign_id: str) -> Bundle | None:
    """The latest version's files of a campaign kept in the ledger; None for a campaign kept in files."""
    return read_bundle(session, campaign_id) if latest_version(session, campaign_id) is not None else None


@contextmanager
def content_of(settings: Settings, campaign_id: str, bundle: Mapping[str, bytes] | None) -> Iterator[
        tuple[Path, Path, Path]]:
    """(campaign file, templates folder, locales folder) to read a campaign from: ``bundle`` (its stored version,
    from :func:`stored_bundle`) unpacked for the time of the ``with``, else the files this machine reads it from."""
    if bundle is not None:
        with unpacked(bundle) as u:
            assert u.campaign_file is not None  # check_bundle refuses a bundle without its YAML
            yield u.campaign_file, u.templates_dir, u.locales_dir
        return
    path = campaign_file(settings, campaign_id)
    if not path.is_file():
        raise NotFound(f"no campaign {campaign_id!r}: no file {path}")
    yield (path, *content_dirs(settings, campaign_id))


def bundle_from_disk(settings: Settings, campaign_id: str) -> Bundle:
    """A campaign's files as this machine reads them (from the studio's copy or the settings' folders)."""
    path = campaign_file(settings, campaign_id)
    if not path.is_file():
        raise NotFound(f"no campaign {campaign_id!r}: no file {path}")
    campaign = parse_campaign(path.read_text(encoding="utf-8-sig"), str(path))
    templates_dir, locales_dir = content_dirs(settings, campaign_id)
    return _bundle_of(path, templates_dir, locales_dir, campaign)


def _bundle_of(path: Path, templates_dir: Path, locales_dir: Path, campaign: Campaign) -> Bundle:
    bundle = {f"campaigns/{campaign.id}.yaml": path.read_bytes()}
    folder = templates_dir / campaign.templates
    if not folder.is_dir():
        raise NotFound(f"campaign {campaign.id}: no templates folder {folder}")
    for file in sorted(folder.rglob("*")):
        if file.is_file() and not file.name.startswith("."):
            bundle[f"templates/{campaign.templates}/{file.relative_to(folder).as_posix()}"] = file.read_bytes()
    pot = locales_dir / f"{campaign.id}.pot"
    if pot.is_file():
        bundle[f"locales/{campaign.id}.pot"] = pot.read_bytes()
    for po in sorted(locales_dir.glob(f"*/LC_MESSAGES/{campaign.id}.po")):
        bundle[po.relative_to(locales_dir.parent).as_posix()] = po.read_bytes()
    return bundle


@contextmanager
def unpacked(bundle: Mapping[str, bytes]) -> Iterator[Unpacked]:
    """The bundle in a temporary folder (removed afterwards), for code that reads files: the renderer, the gate."""
    root = Path(tempfile.mkdtemp(prefix="notifier-bundle-"))
    try:
        campaign_id = check_bundle(bundle)
        for path, data in bundle.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(data)
        for sub in ("campaigns", "templates", "locales"):
            (root / sub).mkdir(exist_ok=True)
        yaml = root / "campaigns" / f"{campaign_id}.yaml"
        yield Unpacked(root, root / "campaigns", root / "templates", root / "locales", yaml if yaml.is_file() else None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- export and import ------------------------------------------------------------------------------------------


def export_campaign(session: Session, campaign_id: str, directory: Path, version: int | None = None) -> list[Path]:
    """Write a stored version's files under ``directory`` in the project's layout, byte for byte."""
    bundle = read_bundle(session, campaign_id, version)
    written = []
    for path in sorted(bundle):
        target = Path(directory) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bundle[path])
        written.append(target)
    return written


def bundle_from_directory(directory: Path) -> Bundle:
    """The one campaign in ``directory`` (campaigns/<id>.yaml and its templates and catalogs), as files in git
    keep it; a UserError when there is none, or several."""
    directory = Path(directory)
    yamls = sorted((directory / "campaigns").glob("*.yaml")) if (directory / "campaigns").is_dir() else []
    if len(yamls) != 1:
        raise UserError(f"{directory}: expected one campaigns/<id>.yaml, found "
                        f"{', '.join(p.name for p in yamls) or 'none'}")
    campaign = parse_campaign(yamls[0].read_text(encoding="utf-8-sig"), str(yamls[0]))
    if yamls[0].stem != campaign.id:
        raise UserError(f"{yamls[0]}: the file says id {campaign.id!r}; name it {campaign.id}.yaml")
    return _bundle_of(yamls[0], directory / "templates", directory / "locales", campaign)


def import_campaign(session: Session, directory: Path, *, now: datetime, origin: str = "import") -> Version:
    """Store the campaign in ``directory`` as its next version (nothing new when no byte changed)."""
    bundle = bundle_from_directory(directory)
    campaign_id = check_bundle(bundle, str(directory))
    return save_version(session, campaign_id, bundle, now=now, origin=origin)


def catalog_key(campaign_id: str, locale: str) -> str:
    """The bundle path of a locale's catalog."""
    return f"locales/{posix(locale)}/LC_MESSAGES/{campaign_id}.po"


__all__ = [
    "Bundle",
    "Unpacked",
    "Version",
    "bundle_from_directory",
    "bundle_from_disk",
    "campaign_file",
    "campaign_of",
    "catalog_key",
    "check_bundle",
    "content_dirs",
    "content_of",
    "export_campaign",
    "fingerprint",
    "import_campaign",
    "is_stored",
    "latest_version",
    "read_bundle",
    "save_version",
    "stored_bundle",
    "stored_campaigns",
    "sync",
    "unpacked",
    "versions",
]
