"""Campaign versions in the ledger: byte-exact export and import, hostile bundles refused, and a second machine (its
own folders, the same ledger) that sends a campaign it only knows from the ledger, frozen again when a new version
changes its copy."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po
from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings
from notifier.errors import NotFound, UserError
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.planner import plan_zone
from notifier.render import Content
from notifier.scaffold import new_campaign
from notifier.studio import store
from notifier.wiring import build_dispatcher
from tests.conftest import ROOT

ACME = "acme-stream"
NOW = datetime(2024, 9, 1, tzinfo=UTC)
SHIPPED = "tiktok-music-shutdown"


def machine(root: Path) -> Settings:
    """A machine's settings: its own content folders (empty) and its own copy of the studio's campaigns."""
    for sub in ("campaigns", "templates", "locales"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return Settings(campaigns_dir=root / "campaigns", templates_dir=root / "templates", locales_dir=root / "locales",
                    studio_dir=root / "studio", outbox_dir=root / "outbox")


def acme_bundle(tmp_path: Path) -> store.Bundle:
    """A campaign as `campaign new` writes it (English and Indonesian, translated), due in October 2024."""
    author = machine(tmp_path / "author")
    new_campaign(ACME, ["en", "id"], campaigns_dir=author.campaigns_dir, templates_dir=author.templates_dir,
                 locales_dir=author.locales_dir, name="Acme Stream")
    po = author.locales_dir / "id" / "LC_MESSAGES" / f"{ACME}.po"
    with po.open("rb") as f:
        catalog = read_po(f, locale="id")
    for m in catalog:
        if m.id:
            m.string = tuple(f"[id] {m.id[-1]}" for _ in range(catalog.num_plurals)) if isinstance(m.id, tuple) \
                else f"[id] {m.id}"
    with po.open("wb") as f:
        write_po(f, catalog)
    spec = author.campaigns_dir / f"{ACME}.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("2030-01-31T00:00", "2024-10-28T00:00"),
                    encoding="utf-8")
    return store.bundle_from_disk(author, ACME)


def test_the_shipped_campaign_goes_into_the_ledger_and_comes_out_byte_for_byte(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    shipped = Settings(campaigns_dir=ROOT / "campaigns", templates_dir=ROOT / "templates",
                       locales_dir=ROOT / "locales", studio_dir=tmp_path / "studio")
    bundle = store.bundle_from_disk(shipped, SHIPPED)
    assert f"campaigns/{SHIPPED}.yaml" in bundle and f"locales/pt_BR/LC_MESSAGES/{SHIPPED}.po" in bundle
    with transaction(sessions) as s:
        first = store.save_version(s, SHIPPED, bundle, now=NOW)
        assert store.save_version(s, SHIPPED, dict(bundle), now=NOW) == first  # nothing changed: no new version
    with sessions() as s:
        written = store.export_campaign(s, SHIPPED, tmp_path / "export")
    assert len(written) == len(bundle)
    for path, data in bundle.items():
        assert (tmp_path / "export" / path).read_bytes() == data
        if path.startswith(("templates/", "locales/")):  # exactly the project's files
            assert (ROOT / path).read_bytes() == data
    with transaction(sessions) as s:
        assert store.import_campaign(s, tmp_path / "export", now=NOW).version == 1  # the round trip is exact

    edited = tmp_path / "export" / "locales" / "id" / "LC_MESSAGES" / f"{SHIPPED}.po"
    edited.write_bytes(edited.read_bytes() + b"\n")
    with transaction(sessions) as s:
        second = store.import_campaign(s, tmp_path / "export", now=NOW + timedelta(hours=1))
    assert (second.version, second.origin) == (2, "import")
    with sessions() as s:
        assert store.read_bundle(s, SHIPPED, 1) == bundle  # an old version is never rewritten
        assert [v.version for v in store.versions(s, SHIPPED)] == [2, 1]
        with pytest.raises(NotFound):
            store.read_bundle(s, "nobody")


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "templates/../../x", "campaigns/second.yaml",
                                  "locales/id/LC_MESSAGES/other.po", "templates/acme-stream/.hidden", "notes.txt",
                                  "templates\\acme-stream\\x"])
def test_a_bundle_with_a_path_outside_the_campaigns_layout_is_refused_by_name(tmp_path: Path, path: str) -> None:
    bundle = acme_bundle(tmp_path)
    with pytest.raises(UserError, match=r"is not a file of campaign|exactly one campaigns/"):
        store.check_bundle({**bundle, path: b"x"})


def test_a_bundle_without_its_campaign_file_or_with_a_huge_file_is_refused(tmp_path: Path) -> None:
    bundle = acme_bundle(tmp_path)
    with pytest.raises(UserError, match=r"exactly one campaigns/<id>\.yaml"):
        store.check_bundle({k: v for k, v in bundle.items() if not k.startswith("campaigns/")})
    with pytest.raises(UserError, match="at most"):
        store.check_bundle({**bundle, f"templates/{ACME}/big.txt": b"x" * (store.MAX_FILE_BYTES + 1)})


def test_a_second_machine_sends_a_campaign_it_knows_only_from_the_ledger_and_freezes_it_on_a_new_version(
        sessions: sessionmaker[Session], add_recipient, tmp_path: Path) -> None:
    bundle = acme_bundle(tmp_path)
    with transaction(sessions) as s:
        store.save_version(s, ACME, bundle, now=NOW, origin="studio")
    worker = machine(tmp_path / "worker")  # no file of Acme on its disk
    assert not (worker.campaigns_dir / f"{ACME}.yaml").exists()
    with transaction(sessions) as s:
        assert store.sync(s, worker) == [ACME]
        assert store.sync(s, worker) == []  # one query when nothing changed
    path = store.campaign_file(worker, ACME)
    assert path.is_relative_to(worker.studio_dir) and store.is_stored(worker, ACME)
    campaign = store.campaign_of(bundle)
    with transaction(sessions) as s:
        queries.schedule(s, campaign, path.read_text(encoding="utf-8"), NOW,
                         Content.of(campaign, *worker.copy_dirs(ACME)), plan_zone)
    add_recipient("budi", timezone="Asia/Jakarta", country="ID", locale="id", tokens=["budi-phone"])
    dispatcher = build_dispatcher(worker, sessions, simulated_clock=True)
    try:
        p30d = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 10:00 in Jakarta
        assert dispatcher.tick(p30d).outcomes == {"sent": 2}
        mail = next((worker.outbox_dir / "email").rglob("*.eml"))
        subject = str(email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)["Subject"])
        assert subject.startswith("[id] ")  # the Indonesian catalog of the ledger's version

        # The studio saves a new wording: every machine picks it up, and the campaign waits for approval.
        po = f"locales/id/LC_MESSAGES/{ACME}.po"
        changed = {**bundle, po: bundle[po].replace(b"[id] Read more:", b"[id] Baca:")}
        with transaction(sessions) as s:
            assert store.save_version(s, ACME, changed, now=p30d).version == 2
        report = dispatcher.tick(datetime(2024, 10, 21, 3, 0, tzinfo=UTC))  # the P7D wave
        assert set(report.refused) == {ACME} and not report.outcomes
        assert (worker.studio_dir / po).read_bytes() == changed[po]
        with transaction(sessions) as s:
            queries.schedule(s, campaign, path.read_text(encoding="utf-8"), NOW,
                             Content.of(campaign, *worker.copy_dirs(ACME)), plan_zone)
        assert dispatcher.tick(datetime(2024, 10, 21, 3, 5, tzinfo=UTC)).outcomes == {"sent": 2}
    finally:
        dispatcher.close()


def test_sync_removes_a_file_the_new_version_no_longer_has(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    bundle = acme_bundle(tmp_path)
    extra = f"templates/{ACME}/notes.txt"
    with transaction(sessions) as s:
        store.save_version(s, ACME, {**bundle, extra: b"draft"}, now=NOW)
    worker = machine(tmp_path / "worker")
    with transaction(sessions) as s:
        store.sync(s, worker)
        assert (worker.studio_dir / extra).is_file()
        store.save_version(s, ACME, bundle, now=NOW)
        assert store.sync(s, worker) == [ACME]
    assert not (worker.studio_dir / extra).exists()


def test_the_cli_exports_and_imports_a_stored_campaign_byte_for_byte(tmp_path: Path) -> None:
    bundle = acme_bundle(tmp_path)
    source = tmp_path / "source"
    for path, data in bundle.items():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes(data)
    env = {"NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}", "NOTIFIER_STUDIO_DIR": str(tmp_path / "st"),
           "PATH": "/usr/bin:/bin"}

    def notifier(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "notifier", *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=120)

    done = notifier("campaign", "import", str(source))
    assert done.returncode == 0, done.stderr
    assert "stored as version 1" in done.stdout
    assert "unchanged, still version 1" in notifier("campaign", "import", str(source)).stdout
    assert notifier("campaign", "export", ACME, str(tmp_path / "out")).returncode == 0
    out = {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
           for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert out == bundle
    missing = notifier("campaign", "export", "nobody", str(tmp_path / "none"))
    assert missing.returncode == 2 and "no campaign 'nobody' in the ledger" in missing.stderr
