"""A second campaign, not TikTok's, written with ``campaign new``: translated, validated, scheduled and delivered
next to the shipped one, each with its own sender and catalogs, and editing one never freezes the other."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from babel.dates import format_time
from babel.messages.pofile import read_po, write_po
from sqlalchemy.orm import Session, sessionmaker

from notifier.campaign import load_campaign, zone
from notifier.config import Settings
from notifier.errors import UserError
from notifier.i18n import catalog_path, formatting_locale, posix
from notifier.ledger import queries
from notifier.ledger.db import transaction
from notifier.planner import plan_zone
from notifier.render import Content, Personal, Renderer
from notifier.review import review
from notifier.scaffold import new_campaign
from notifier.wiring import build_dispatcher
from tests.conftest import ROOT, without_spread
from tests.ledger_views import rows_of

ACME = "acme-price-change"
LOCALES = ["en", "id", "pt-BR"]


@pytest.fixture
def project(tmp_path: Path) -> Settings:
    """A copy of the project's content folders, with the shipped campaign in them."""
    for folder in ("campaigns", "templates", "locales"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return Settings(campaigns_dir=tmp_path / "campaigns", templates_dir=tmp_path / "templates",
                    locales_dir=tmp_path / "locales", outbox_dir=tmp_path / "outbox")


def scaffold(settings: Settings, campaign_id: str = ACME, locales: list[str] = LOCALES) -> list[Path]:
    return new_campaign(campaign_id, locales, campaigns_dir=settings.campaigns_dir,
                        templates_dir=settings.templates_dir, locales_dir=settings.locales_dir, name="Acme Stream")


def translate(settings: Settings, tag: str, campaign_id: str = ACME) -> None:
    """A translator's work, stood in for by a marked copy of the English (placeholders kept)."""
    po = catalog_path(settings.locales_dir, tag, domain=campaign_id)
    with po.open("rb") as f:
        catalog = read_po(f, locale=posix(tag))
    for m in catalog:
        if m.id:
            m.string = (tuple(f"[{tag}] {m.id[-1]}" for _ in range(catalog.num_plurals))
                        if isinstance(m.id, tuple) else f"[{tag}] {m.id}")
    with po.open("wb") as f:
        write_po(f, catalog)


def problems(settings: Settings, campaign_id: str = ACME) -> list[str]:
    campaign = load_campaign(settings.campaigns_dir / f"{campaign_id}.yaml")
    return [str(p) for p in review(campaign, Renderer(settings.templates_dir, settings.locales_dir))]


def test_a_new_campaign_names_every_string_left_to_translate_and_validates_once_translated(project: Settings) -> None:
    written = scaffold(project)

    assert {p.name for p in written} >= {f"{ACME}.yaml", "email_subject.txt", "email.txt", "email.mjml",
                                         "push_title.txt", "push_body.txt", f"{ACME}.pot", f"{ACME}.po"}
    left = problems(project)
    assert left and all(": untranslated" in p for p in left)
    assert {p.split("LC_MESSAGES")[0].rsplit("/", 2)[-2] for p in left} == {"id", "pt_BR"}  # English is the source
    for tag in ("id", "pt-BR"):
        translate(project, tag)
    assert problems(project) == []


def test_an_english_only_campaign_validates_as_written(project: Settings) -> None:
    scaffold(project, "acme-en", ["en"])
    assert problems(project, "acme-en") == []


def test_campaign_new_refuses_a_bad_id_unknown_locales_and_an_existing_campaign(project: Settings) -> None:
    with pytest.raises(UserError, match="a campaign id is 1 to 63"):
        scaffold(project, "../evil")
    with pytest.raises(UserError, match="--locales: xx-QQQ"):
        scaffold(project, "acme-x", ["xx-QQQ"])
    with pytest.raises(UserError, match="already exists"):
        scaffold(project, "tiktok-music-shutdown")


# --- the starter's words follow its deadline (docs/templates.md, "What 'last day' means") ----------------------


def clock(hour: int) -> str:
    """A time of day as the English messages write it (Babel's short format, plain spaces)."""
    return format_time(time(hour, 0), "short", locale=formatting_locale("en")).replace("\u202f", " ")


def set_at(settings: Settings, at: str, campaign_id: str = ACME) -> None:
    spec = settings.campaigns_dir / f"{campaign_id}.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace('at: "2030-01-31T00:00"', f'at: "{at}"'),
                    encoding="utf-8")


def starter_says(settings: Settings, wave: str, where: str) -> tuple[str, str, str]:
    """The subject, push title and push body of the starter's ``wave``, for an English reader in ``where``."""
    campaign = load_campaign(settings.campaigns_dir / f"{ACME}.yaml")
    tz = zone(where)
    [send] = [s for s in plan_zone(campaign, tz).sends if s.wave == wave]
    v = Renderer(settings.templates_dir, settings.locales_dir).variant(campaign, "en", send.items, tz, send.send_at,
                                                                      None, Personal())
    return tuple(x.replace("\u202f", " ") for x in (v.subject, v.push_title, v.push_body))  # type: ignore[return-value]


NEWS = "Something is changing, and we want you to know in good time."


@pytest.mark.parametrize(("at", "where", "p1d", "p7d"), [
    # Midnight: the 31st has not begun to be usable, so the last day is the 30th, and the P1D wave goes out on it.
    ("2030-01-31T00:00", "Asia/Jakarta", ("Today is the last day (30 January 2030).", "Today is the last day"),
     ("7 days left: the last day is 30 January 2030.", "7 days left")),
    ("2030-03-01T00:00", "America/Sao_Paulo", ("Today is the last day (28 February 2030).", "Today is the last day"),
     ("7 days left: the last day is 28 February 2030.", "7 days left")),
    # 09:00: the 31st is the last day, until 09:00; the P1D wave goes out the day before it.
    ("2030-01-31T09:00", "Asia/Jakarta",
     (f"Tomorrow is the last day (31 January 2030, until {clock(9)}).", "Tomorrow is the last day"),
     (f"8 days left: the last day is 31 January 2030, until {clock(9)}.", "8 days left")),
    # One instant for everyone: midnight in Jakarta, 17:00 on the 30th in London.
    ("2030-01-31T00:00+07:00", "Asia/Jakarta", ("Today is the last day (30 January 2030).", "Today is the last day"),
     ("7 days left: the last day is 30 January 2030.", "7 days left")),
    ("2030-01-31T00:00+07:00", "Europe/London",
     (f"Tomorrow is the last day (30 January 2030, until {clock(17)}).", "Tomorrow is the last day"),
     (f"8 days left: the last day is 30 January 2030, until {clock(17)}.", "8 days left")),
])
def test_the_starters_words_name_the_last_day_its_at_leaves(project: Settings, at: str, where: str,
                                                            p1d: tuple[str, str], p7d: tuple[str, str]) -> None:
    scaffold(project, ACME, ["en"])
    set_at(project, at)
    for wave, (line, title) in (("P1D", p1d), ("P7D", p7d)):
        assert starter_says(project, wave, where) == (line, title, f"{line} {NEWS}"), (wave, where)


def test_campaign_new_then_preview_the_one_day_wave_names_the_real_last_day(project: Settings) -> None:
    made = cli(project, "campaign", "new", ACME, "--locales", "en")
    assert made.returncode == 0, made.stderr

    def p1d_subject() -> str:
        shown = cli(project, "preview", ACME, "--locale", "en", "--deadline", "change", "--wave", "P1D", "--channel",
                    "email", "--format", "json")
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)["subject"].replace("\u202f", " ")

    assert p1d_subject() == "Today is the last day (30 January 2030)."  # at: 2030-01-31T00:00, as written
    set_at(project, "2030-01-31T09:00")
    assert p1d_subject() == f"Tomorrow is the last day (31 January 2030, until {clock(9)})."


def _schedule(sessions: sessionmaker[Session], settings: Settings, campaign_id: str, now: datetime) -> None:
    path = settings.campaigns_dir / f"{campaign_id}.yaml"
    campaign = load_campaign(path)
    with transaction(sessions) as s:
        queries.schedule(s, campaign, path.read_text(encoding="utf-8"), now,
                         Content.of(campaign, settings.templates_dir, settings.locales_dir), plan_zone)


def test_two_campaigns_go_out_side_by_side_with_their_own_sender_and_catalogs(
        project: Settings, sessions: sessionmaker[Session], add_recipient) -> None:
    scaffold(project)
    for tag in ("id", "pt-BR"):
        translate(project, tag)
    spec = project.campaigns_dir / f"{ACME}.yaml"
    launch = ("  - id: launch\n    label: The new plan starts\n"
              '    at: "2024-10-30T12:00:00+07:00"   # one instant for everyone\n'
              "    channels: [email]\n    waves: [P2D]\n")
    spec.write_text(spec.read_text(encoding="utf-8").replace('at: "2030-01-31T00:00"', 'at: "2024-10-28T00:00"')
                    + launch, encoding="utf-8")
    assert problems(project) == []
    shipped = project.campaigns_dir / "tiktok-music-shutdown.yaml"  # without its spread: ticks at its sends' times
    shipped.write_text(without_spread(shipped.read_text(encoding="utf-8")), encoding="utf-8")
    add_recipient("budi", timezone="Asia/Jakarta", country="ID", locale="id", tokens=["budi-phone"])
    now = datetime(2024, 9, 1, tzinfo=UTC)
    _schedule(sessions, project, "tiktok-music-shutdown", now)
    _schedule(sessions, project, ACME, now)
    dispatcher = build_dispatcher(project, sessions, simulated_clock=True)

    first = datetime(2024, 9, 28, 3, 0, tzinfo=UTC)  # 10:00 in Jakarta: TikTok's first wave and Acme's P30D
    assert dispatcher.tick(first).outcomes == {"sent": 4}  # an email and a push of each

    senders = {}
    for path in (project.outbox_dir / "email").rglob("*.eml"):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        senders[msg["X-Notifier-Campaign-Id"]] = (str(msg["From"]), str(msg["Subject"]))
    assert senders[ACME][0] == "Acme Stream <no-reply@example.com>"
    assert senders[ACME][1].startswith("[id] ")  # its own catalog
    assert "Acme" not in senders["tiktok-music-shutdown"][0]

    # Editing Acme's Indonesian catalog freezes Acme only.
    po = catalog_path(project.locales_dir, "id", domain=ACME)
    po.write_text(po.read_text(encoding="utf-8").replace("[id] Read more:", "[id] Baca:"), encoding="utf-8")
    report = dispatcher.tick(datetime(2024, 10, 21, 3, 0, tzinfo=UTC))  # both campaigns' P7D
    assert set(report.refused) == {ACME}
    assert report.outcomes == {"sent": 2}  # TikTok's P7D, email and push
    assert dispatcher.tick(datetime(2024, 10, 21, 3, 0, tzinfo=UTC) + timedelta(minutes=1)).claimed == 0
    _schedule(sessions, project, ACME, datetime(2024, 10, 21, 3, 2, tzinfo=UTC))  # approved again
    assert dispatcher.tick(datetime(2024, 10, 21, 3, 3, tzinfo=UTC)).outcomes == {"sent": 2}

    # The email-only, single-instant deadline: two days before 30 Oct 12:00 +07:00, by email alone.
    dispatcher.tick(datetime(2024, 10, 28, 3, 0, tzinfo=UTC))
    launch_rows = {ch: r.state for (key, ch), r in rows_of(sessions, "budi").items() if key == "launch@P2D"}
    assert launch_rows == {"email": "sent"}


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The notifier command on this project's content folders."""
    env = {**os.environ, "NOTIFIER_CAMPAIGNS_DIR": str(settings.campaigns_dir),
           "NOTIFIER_TEMPLATES_DIR": str(settings.templates_dir), "NOTIFIER_LOCALES_DIR": str(settings.locales_dir)}
    return subprocess.run([sys.executable, "-m", "notifier", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)


def test_the_campaign_new_command_writes_a_campaign_that_validate_then_accepts(project: Settings) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(project, *args)

    made = run("campaign", "new", ACME, "--locales", "en,id", "--name", "Acme Stream")
    assert made.returncode == 0, made.stderr
    assert f"wrote {project.campaigns_dir / (ACME + '.yaml')}" in made.stdout
    refused = run("campaign", "validate", str(project.campaigns_dir / f"{ACME}.yaml"))
    assert refused.returncode == 2 and "(id): untranslated" in refused.stderr and "Traceback" not in refused.stderr
    translate(project, "id")
    accepted = run("campaign", "validate", str(project.campaigns_dir / f"{ACME}.yaml"))
    assert accepted.returncode == 0, accepted.stderr
    again = run("campaign", "new", ACME)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_the_readmes_campaign_example_is_a_valid_campaign() -> None:
    from notifier.campaign import parse_campaign

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### The campaign file"):]
    example = section[section.index("```yaml\n") + len("```yaml\n"):section.index("```\n", 8)]
    campaign = parse_campaign(example, source="README.md")
    assert campaign.id == "tiktok-music-shutdown" and campaign.sender is not None
    assert [d.id for d in campaign.deadlines] == ["playlist-transfer", "refund"]
    assert campaign.deadline("refund").channels == ("email",)


def test_a_new_campaigns_email_escapes_what_its_macros_print_exactly_once(project: Settings) -> None:
    """email.mjml sets html_part, so _copy.j2's macros escape their values there, as the shipped campaign's do: a
    value with markup in it is printed as text, neither raw (it would break the MJML) nor escaped twice."""
    scaffold(project, "acme-en", ["en"])
    campaign = load_campaign(project.campaigns_dir / "acme-en.yaml")
    renderer = Renderer(project.templates_dir, project.locales_dir)
    tz = zone("Asia/Jakarta")
    send = plan_zone(campaign, tz).sends[0]
    ctx = renderer.context(campaign, "en", send.items, tz, send.send_at.astimezone(tz).date(), "ID", Personal())
    ctx["deadlines"] = [dataclasses.replace(d, last_day="<b>R&D</b>") for d in ctx["deadlines"]]
    html = renderer.env(campaign, "en").get_template("email.mjml").render({**ctx, "subject": "s"})

    assert "&lt;b&gt;R&amp;D&lt;/b&gt;" in html
    assert "<b>R&D" not in html and "&amp;lt;" not in html
