"""What marketing sees before anything is sent: one message, as a recipient gets it, a gallery, a template check."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from notifier.campaign import load_campaign
from notifier.review import SAMPLE_NAME, samples
from tests.conftest import CAMPAIGN_FILE, ROOT

CAMPAIGN = load_campaign(CAMPAIGN_FILE)
REFUND_P7D = ("--deadline", "refund", "--wave", "P7D")
PT_SUBJECT = "Faltam 7 dias para pedir seu reembolso do TikTok Music"


def notifier(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notifier", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT, timeout=120)


def preview(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return notifier("preview", CAMPAIGN.id, *args, env=env)


# --- one message -------------------------------------------------------------------------------------------


def test_preview_prints_the_email_as_json_in_the_chosen_locale() -> None:
    result = preview("--locale", "pt-BR", *REFUND_P7D, "--channel", "email", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"subject", "text", "html"}
    assert doc["subject"] == PT_SUBJECT and "dias" in doc["subject"]
    assert doc["text"].startswith(f"Olá, {SAMPLE_NAME},\n")
    assert "antes de 28 de novembro de 2024 (7 dias restantes)." in doc["text"]
    assert "Valor estimado do seu reembolso: R$\xa0149.900,50." in doc["text"]
    assert '<html lang="pt-BR"' in doc["html"] and "Solicitar meu reembolso" in doc["html"]


def test_preview_prints_the_push_as_json_title_and_body() -> None:
    result = preview("--locale", "pt-BR", *REFUND_P7D, "--channel", "push", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "title": "7 dias restantes",
        "body": "O TikTok Music será encerrado em 28 de novembro de 2024. "
                "Se tiver direito a reembolso, peça antes disso.",
        "link": "https://music.tiktok.com/refund",  # the refund deadline's link: the page a tap opens
    }


def test_preview_as_text_starts_with_the_subject_line() -> None:
    result = preview("--locale", "pt-BR", *REFUND_P7D)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Subject: {PT_SUBJECT}\n\nOlá, {SAMPLE_NAME},\n")


@pytest.mark.parametrize(("args", "message"), [
    (("--locale", "fr", *REFUND_P7D), "--locale fr: the campaign's locales are id, pt-BR, es-MX, en"),
    (("--locale", "xx", *REFUND_P7D), "--locale xx: the campaign's locales are id, pt-BR, es-MX, en"),
    (("--deadline", "closure", "--wave", "P7D"), "--deadline closure: the campaign's deadlines are "
                                                 "playlist-transfer, refund"),
    (("--deadline", "refund", "--wave", "P14D"), "--wave P14D: refund has waves P61D, P30D, P7D, P1D"),
], ids=["locale-not-in-campaign", "locale-not-a-locale", "deadline", "wave"])
def test_an_unknown_choice_is_one_line_naming_the_valid_ones(args: tuple[str, ...], message: str) -> None:
    result = preview(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"error: {message}\n"


# --- as one recipient gets it ------------------------------------------------------------------------------

AUDIENCE = """\
id,email,name,locale,timezone,country,push_tokens,joined_at,refund_amount,refund_currency
joao,joao@example.com,João Ninguém,pt,America/Manaus,BR,,2024-01-01T00:00:00Z,21.9,BRL
"""


def test_preview_as_a_recipient_uses_their_name_refund_and_negotiated_locale(tmp_path: Path) -> None:
    env = {"NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    audience = tmp_path / "audience.csv"
    audience.write_text(AUDIENCE, encoding="utf-8")
    imported = notifier("audience", "import", str(audience), "--now", "2024-09-01T00:00Z", env=env)
    assert imported.returncode == 0, imported.stderr
    assert "1 accepted" in imported.stdout

    result = preview(*REFUND_P7D, "--recipient", "joao", env=env)  # no --locale: "pt" negotiates to pt-BR
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Subject: {PT_SUBJECT}\n\nOlá, João Ninguém,\n")
    assert "Valor estimado do seu reembolso: R$\xa021,90." in result.stdout
    assert SAMPLE_NAME not in result.stdout

    missing = preview(*REFUND_P7D, "--recipient", "nobody", env=env)
    assert missing.returncode == 2
    assert missing.stderr == "error: --recipient nobody: no such recipient in the ledger\n"


# --- the gallery -------------------------------------------------------------------------------------------


def test_the_gallery_shows_every_sample_in_every_locale_without_a_ledger(tmp_path: Path) -> None:
    ledger = tmp_path / "never-created.db"
    result = preview("--gallery", str(tmp_path / "gallery"), env={"NOTIFIER_DATABASE_URL": f"sqlite:///{ledger}"})
    assert result.returncode == 0, result.stderr
    page_path = tmp_path / "gallery" / "index.html"
    assert result.stdout == f"gallery: {page_path.resolve()}\n"
    assert not ledger.exists(), "the gallery renders sample recipients; it never reads the ledger"

    page = page_path.read_text(encoding="utf-8")
    count = len(list(samples(CAMPAIGN)))
    assert count == 32  # 8 sends (the merged one also split by deadline) × 4 locales
    assert "<thead><tr><th></th>" + "".join(f"<th>{loc}</th>" for loc in CAMPAIGN.locales) + "</tr></thead>" in page
    assert len(re.findall(r'<iframe title="email" sandbox srcdoc="[^"]+"></iframe>', page)) == count
    assert page.count("<iframe") == count
    assert page.count('<div class="notification">') == count
    assert f"{count} rendered messages with a sample recipient" in page
    assert SAMPLE_NAME in page and 'class="none"' not in page and 'class="warn"' not in page
    assert page.count('<th class="send">') == count // len(CAMPAIGN.locales)
    for subject in (PT_SUBJECT, "Quedan 7 días para pedir tu reembolso de TikTok Music",
                    "Tinggal 7 hari lagi untuk mengajukan pengembalian dana TikTok Music",
                    "7 days left to request your TikTok Music refund"):
        assert f'<p class="subject">{subject}</p>' in page


# --- campaign validate renders every template ---------------------------------------------------------------


def test_validate_reports_every_broken_template_in_every_locale_at_once(tmp_path: Path) -> None:
    folder = Path(shutil.copytree(ROOT / "templates" / CAMPAIGN.templates, tmp_path / CAMPAIGN.templates))
    (folder / "push_body.txt").write_text("Hello {{ first_nmae }}\n", encoding="utf-8")
    (folder / "email_subject.txt").write_text("{{ ''.__class__.__mro__ }}\n", encoding="utf-8")

    result = notifier("campaign", "validate", str(CAMPAIGN_FILE), env={"NOTIFIER_TEMPLATES_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert all(line.startswith(f"error: {folder}: ") for line in lines)
    where = f"campaign {CAMPAIGN.id}: template {CAMPAIGN.templates}"
    for loc in CAMPAIGN.locales:
        sandbox = [x for x in lines if f"{where}/email_subject.txt ({loc}): refused by the sandbox: " in x]
        undefined = [x for x in lines if f"{where}/push_body.txt ({loc}): 'first_nmae' is undefined" in x]
        assert len(sandbox) == len(undefined) == 1, (loc, lines)
        assert "__class__" in sandbox[0]
    assert len(lines) == 2 * len(CAMPAIGN.locales)


def test_the_gallerys_phone_shows_the_campaigns_sender_name(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from notifier.campaign import parse_campaign
    from notifier.preview import write_gallery
    from notifier.render import Renderer

    campaign = parse_campaign(CAMPAIGN_FILE.read_text() + "sender:\n  name: Acme & Co\n  email: n@acme.example\n")
    page = write_gallery(campaign, Renderer(ROOT / "templates", ROOT / "locales"), tmp_path,
                         datetime(2024, 9, 1, tzinfo=UTC)).read_text()
    assert '<div class="app">Acme &amp; Co · now</div>' in page
    assert "TikTok Music · now" not in page


# --- what is never sent, and who the sample readers are -------------------------------------------------------

EMAIL_ONLY_REFUND = CAMPAIGN_FILE.read_text(encoding="utf-8").replace(
    "    skip_if: refund_requested\n", "    skip_if: refund_requested\n    channels: [email]\n")


def test_a_push_of_a_deadline_announced_by_email_only_is_not_previewed_but_said_never_sent(tmp_path: Path) -> None:
    spec = tmp_path / "email-only-refund.yaml"
    spec.write_text(EMAIL_ONLY_REFUND, encoding="utf-8")
    push = notifier("preview", str(spec), "--locale", "pt-BR", *REFUND_P7D, "--channel", "push")
    assert push.returncode == 2 and push.stdout == ""
    assert push.stderr == "error: --channel push: refund P7D is never sent: this deadline is announced by email only\n"
    email = notifier("preview", str(spec), "--locale", "pt-BR", *REFUND_P7D, "--channel", "email")
    assert email.returncode == 0 and email.stdout.startswith(f"Subject: {PT_SUBJECT}\n")


def test_the_gallery_draws_only_what_is_sent_and_says_why_the_rest_never_is(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from notifier.campaign import parse_campaign
    from notifier.preview import write_gallery
    from notifier.render import Renderer

    campaign = parse_campaign(EMAIL_ONLY_REFUND)
    page = write_gallery(campaign, Renderer(ROOT / "templates", ROOT / "locales"), tmp_path,
                         datetime(2024, 9, 1, tzinfo=UTC)).read_text()
    never = re.findall(r'<p class="never">([^<]*)</p>', page)
    assert "push: never sent: this deadline is announced by email only" in never
    count = len(list(samples(campaign)))
    assert page.count("<iframe") + page.count('<div class="notification">') + len(never) == 2 * count
    assert page.count('<div class="notification">') < page.count("<iframe")


def test_each_locales_sample_reader_lives_in_a_country_of_that_locale_with_a_name_from_there() -> None:
    places = {s.locale: (s.zone, s.country, s.personal().name) for s in samples(CAMPAIGN)}
    assert places["id"][:2] == ("Asia/Jakarta", "ID") and places["id"][2] != SAMPLE_NAME  # not a Brazilian name
    assert places["pt-BR"] == ("America/Sao_Paulo", "BR", SAMPLE_NAME)
    assert places["es-MX"][:2] == ("America/Mexico_City", "MX") and "Hernández" in places["es-MX"][2]
    assert places["en"][:2] == ("Australia/Sydney", "AU")  # the campaign's first English-speaking country
    from notifier.campaign import parse_campaign

    elsewhere = parse_campaign(CAMPAIGN_FILE.read_text(encoding="utf-8").replace(
        "countries: [ID, BR, AU, SG, MX]", "countries: [BR, MX, ID]"))
    assert {s.zone for s in samples(elsewhere) if s.locale == "en"} == {"America/Sao_Paulo"}  # no English country
    result = preview("--locale", "id", *REFUND_P7D)
    assert result.returncode == 0, result.stderr
    assert f"\n\nHalo, {places['id'][2]},\n" in result.stdout
