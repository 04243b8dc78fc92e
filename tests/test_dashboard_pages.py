"""The dashboard's pages and controls over HTTP (the browser test drives the same in Chromium): upload and edit
with each problem next to its line, schedule / pause / resume / cancel / retry on the ledger, the gallery, one
recipient's messages with their reasons, both languages, and hostile text kept inert."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifier.audience import import_audience
from notifier.campaign import CATEGORIES
from notifier.demo import DATA, START
from notifier.ledger.models import CampaignRow, DeliveryRow, Recipient, SendGroup, SkipReason
from notifier.web import create_app
from notifier.web.dashboard import pages, views
from notifier.web.dashboard.views import Progress
from notifier.wiring import build_dispatcher
from tests.conftest import ROOT
from tests.test_dashboard_access import dashboard_settings, log_in, nonce_of

CAMPAIGN = "tiktok-music-shutdown"
SHUTDOWN = (ROOT / "campaigns" / f"{CAMPAIGN}.yaml").read_text(encoding="utf-8")


class Dash:
    def __init__(self, client: TestClient, sessions: sessionmaker[Session], campaigns: Path, clock: list[datetime],
                 settings: object) -> None:
        self.client, self.sessions, self.campaigns, self.clock, self.settings = (client, sessions, campaigns,
                                                                                 clock, settings)

    def csrf(self, path: str = "/campaigns") -> str:
        return nonce_of(self.client.get(path).text)

    def post(self, path: str, **data: str) -> object:
        return self.client.post(path, data={"csrf": self.csrf(), **data}, follow_redirects=False)

    def upload(self, text: str, name: str = f"{CAMPAIGN}.yaml", path: str = "/campaigns/new") -> object:
        return self.client.post(path, data={"csrf": self.csrf()}, follow_redirects=False,
                                files={"file": (name, text.encode("utf-8"), "text/yaml")})

    def state(self) -> str | None:
        with self.sessions() as s:
            row = s.get(CampaignRow, CAMPAIGN)
            return str(row.state) if row else None


@pytest.fixture
def dash(tmp_path: Path, sessions: sessionmaker[Session]) -> Iterator[Dash]:
    """Logged in, over the demo's audience, on SQLite and on PostgreSQL."""
    yield from _dashboard(tmp_path, sessions)


@pytest.fixture
def own_copy(tmp_path: Path, sessions: sessionmaker[Session]) -> Iterator[Dash]:
    """The same, over a private copy of the templates and catalogs, which a test may edit."""
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    shutil.copytree(ROOT / "locales", tmp_path / "locales")
    yield from _dashboard(tmp_path, sessions, templates_dir=tmp_path / "templates", locales_dir=tmp_path / "locales")


def _dashboard(tmp_path: Path, sessions: sessionmaker[Session], **changes: object) -> Iterator[Dash]:
    settings = dashboard_settings(tmp_path, outbox_dir=tmp_path / "outbox", **changes)
    import_audience(sessions, DATA / "audience.csv", now=START)
    clock = [START]
    with TestClient(create_app(settings, sessions, clock=lambda: clock[0]), base_url="http://127.0.0.1") as c:
        assert log_in(c).status_code == 303
        yield Dash(c, sessions, settings.campaigns_dir, clock, settings)


def test_an_uploaded_campaign_is_checked_then_saved_as_a_draft(dash: Dash) -> None:
    r = dash.upload(SHUTDOWN)
    assert r.status_code == 303 and r.headers["location"] == f"/campaigns/{CAMPAIGN}?done=saved"
    assert (dash.campaigns / f"{CAMPAIGN}.yaml").read_text(encoding="utf-8") == SHUTDOWN
    listing = dash.client.get("/campaigns").text
    assert f'data-campaign="{CAMPAIGN}"' in listing and "draft" in listing
    page = dash.client.get(f"/campaigns/{CAMPAIGN}")
    assert page.status_code == 200 and 'id="schedule"' in page.text and "<svg" in page.text
    assert dash.state() is None  # saving sends nothing


def test_each_problem_of_a_broken_file_is_shown_under_its_line_and_nothing_is_saved(dash: Dash) -> None:
    broken = (SHUTDOWN.replace('at: "2024-10-28T00:00"', 'at: "2024-13-28T00:00"')
              .replace("max_per_day: 1 ", "max_per_day: lots "))
    lines = broken.splitlines()
    wanted = {i + 1 for i, ln in enumerate(lines) if "2024-13-28" in ln or "lots" in ln}
    r = dash.upload(broken)
    assert r.status_code == 422
    shown = {int(n) for n in re.findall(r'<p class="problem" data-line="(\d+)">', r.text)}
    assert shown == wanted
    for n in wanted:
        item = re.search(rf'<li id="L{n}" value="{n}" class="bad">(.*?)</li>', r.text, re.S)
        assert item and "problem" in item[1]
    assert "2 problems" in r.text and 'href="#L' in r.text
    assert not (dash.campaigns / f"{CAMPAIGN}.yaml").exists()


def test_an_upload_may_not_take_an_existing_id_nor_an_edit_change_it(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    assert dash.upload(SHUTDOWN).status_code == 422
    other = SHUTDOWN.replace(f"id: {CAMPAIGN}", "id: another-id")
    r = dash.upload(other, path=f"/campaigns/{CAMPAIGN}/edit")
    assert r.status_code == 422 and "another-id" in r.text
    assert (dash.campaigns / f"{CAMPAIGN}.yaml").read_text(encoding="utf-8") == SHUTDOWN


def test_a_file_that_is_too_big_or_not_text_is_refused(dash: Dash) -> None:
    assert dash.upload("x" * (300 * 1024)).status_code == 413
    r = dash.client.post("/campaigns/new", data={"csrf": dash.csrf()}, follow_redirects=False,
                         files={"file": ("c.yaml", b"id: \xff\xfe", "text/yaml")})
    assert r.status_code == 400


def test_schedule_pause_resume_and_a_confirmed_cancel_change_the_ledger(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    assert dash.post(f"/campaigns/{CAMPAIGN}/schedule").status_code == 303
    assert dash.state() == "scheduled"
    with dash.sessions() as s:
        assert s.scalar(select(func.count()).select_from(SendGroup)) > 0
    assert dash.post(f"/campaigns/{CAMPAIGN}/pause").status_code == 303 and dash.state() == "paused"
    assert 'id="resume"' in dash.client.get(f"/campaigns/{CAMPAIGN}").text
    assert dash.post(f"/campaigns/{CAMPAIGN}/resume").status_code == 303 and dash.state() == "scheduled"
    assert "Cancelling is for good" in dash.client.get(f"/campaigns/{CAMPAIGN}/cancel").text
    assert dash.post(f"/campaigns/{CAMPAIGN}/cancel").status_code == 400 and dash.state() == "scheduled"
    assert dash.post(f"/campaigns/{CAMPAIGN}/cancel", confirm="yes").status_code == 303
    assert dash.state() == "cancelled"
    assert dash.post(f"/campaigns/{CAMPAIGN}/resume").status_code == 409  # a cancelled campaign stays cancelled


def test_a_campaign_that_would_send_nothing_is_refused_with_its_reasons_and_nothing_is_scheduled(dash: Dash) -> None:
    """The dashboard refuses what `campaign schedule` refuses: every deadline of the shutdown campaign is over by
    the first of December 2024, so scheduling it then would plan nothing."""
    dash.upload(SHUTDOWN)
    dash.clock[0] = datetime(2024, 12, 1, tzinfo=UTC)

    page = dash.post(f"/campaigns/{CAMPAIGN}/schedule")

    assert page.status_code == 422  # type: ignore[attr-defined]
    assert "nothing will be sent" in page.text and "has passed in every time zone" in page.text  # type: ignore[attr-defined]
    assert dash.state() is None


def test_live_counts_follow_the_ledger_by_wave_locale_and_channel(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    dispatcher = build_dispatcher(dash.settings, dash.sessions, simulated_clock=True)  # type: ignore[arg-type]
    try:
        dispatcher.tick(datetime(2024, 9, 28, 12, tzinfo=START.tzinfo))
    finally:
        dispatcher.close()
    with dash.sessions() as s:
        sent = s.scalar(select(func.count()).select_from(DeliveryRow).where(DeliveryRow.state == "sent"))
    assert sent
    fragment = dash.client.get(f"/campaigns/{CAMPAIGN}/progress").text
    total = int(re.search(r'data-state="sent">([\d,.]+)<', fragment)[1].replace(",", ""))  # type: ignore[index]
    assert total == sent
    for caption in ("By wave", "By locale", "By channel"):
        assert f"<caption>{caption}</caption>" in fragment
    assert "<th scope=\"row\">email</th>" in fragment and "<th scope=\"row\">id</th>" in fragment


def test_a_page_whose_counts_were_slow_to_read_polls_them_later(dash: Dash, monkeypatch: pytest.MonkeyPatch) -> None:
    dash.upload(SHUTDOWN)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    ticks = iter([0.0, 0.05, 100.0, 100.8])  # a read of 0.05 s, then one of 0.8 s
    monkeypatch.setattr(views, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    quick = dash.client.get(f"/campaigns/{CAMPAIGN}/progress").text
    slow = dash.client.get(f"/campaigns/{CAMPAIGN}/progress").text
    assert 'data-every="2000"' in quick and 'data-every="8000"' in slow


def test_counts_slow_to_read_are_polled_less_often() -> None:
    """A read of the counts costs the ledger a tenth of the page's time at most: the page waits ten times as long
    as the read took before the next one, from 2 s up to 30 s."""
    assert [Progress(None, took=t).every_ms for t in (0.0, 0.1, 0.25, 0.8, 3.0, 60.0)] == \
        [2000, 2000, 2500, 8000, 30000, 30000]


def test_retry_puts_failed_messages_back(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    tick(dash, datetime(2024, 9, 28, 12, tzinfo=UTC))
    with dash.sessions.begin() as s:  # two emails that failed for good, one push
        ids = s.scalars(select(DeliveryRow.id).where(DeliveryRow.channel == "email").order_by(DeliveryRow.id)
                        .limit(2)).all()
        push = s.scalars(select(DeliveryRow.id).where(DeliveryRow.channel == "push").limit(1)).one()
        s.execute(update(DeliveryRow).where(DeliveryRow.id.in_([*ids, push]))
                  .values(state="failed", last_error="gave up after 25 attempts: sendgrid 500"))

    r = dash.post(f"/campaigns/{CAMPAIGN}/retry", channel="email")

    assert r.status_code == 303 and "done=retried&n=2" in r.headers["location"]
    with dash.sessions() as s:
        rows = s.execute(select(DeliveryRow.id, DeliveryRow.state).where(DeliveryRow.id.in_([*ids, push])))
        states = dict(rows.all())
    assert states == {ids[0]: "pending", ids[1]: "pending", push: "failed"}  # only the channel asked for
    assert dash.post(f"/campaigns/{CAMPAIGN}/retry", channel="sms").status_code == 400


def test_the_gallery_shows_every_message_with_email_sandboxed_and_push_on_a_phone(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    page = dash.client.get(f"/campaigns/{CAMPAIGN}/gallery").text
    frames = re.findall(r"<iframe class=\"email\" sandbox title=", page)
    phones = re.findall(r'<div class="phone" role="img"', page)
    assert len(frames) == len(phones) > 16
    assert "TikTok Music" in page and 'lang="pt-BR"' in page
    assert re.search(r"<iframe[^>]*srcdoc=\"[^\"]*&lt;", page)  # the email's HTML is an attribute, escaped


def test_a_recipient_page_shows_what_they_got_and_why_anything_was_skipped(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    draft = dash.client.get(f"/campaigns/{CAMPAIGN}/recipients/u00001").text
    assert "Asia/Makassar" in draft and "planned" in draft and "putri.kusuma927@example.org" not in draft
    assert "7 days before Playlist transfer" in draft  # the whole plan, before anything is sent
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    tick(dash, datetime(2024, 9, 28, 12, tzinfo=UTC))  # the first, merged message goes out
    dash.post(f"/campaigns/{CAMPAIGN}/cancel", confirm="yes")
    tick(dash, datetime(2024, 10, 21, 12, tzinfo=UTC))  # a week before the playlist deadline: nothing more

    page = dash.client.get(f"/campaigns/{CAMPAIGN}/recipients/u00001")

    assert page.status_code == 200
    rows = re.findall(r'<tr class="state-(\w+)">(.*?)</tr>', page.text, re.S)
    assert [state for state, _ in rows] == ["sent", "sent"]  # the email and the push, before the cancel
    assert all("30 days before Playlist transfer, and 61 days before Refund" in row for _, row in rows)
    assert "7 days before Playlist transfer" not in page.text  # a cancelled campaign plans nothing more
    assert "putri.kusuma927@example.org" not in page.text
    assert dash.client.get(f"/campaigns/{CAMPAIGN}/recipients/nobody").status_code == 404


def test_the_pages_speak_indonesian_when_asked_and_remember_it(dash: Dash) -> None:
    r = dash.client.get("/campaigns?lang=id")
    assert '<html lang="id">' in r.text and "Kampanye" in r.text
    assert '<html lang="id">' in dash.client.get("/campaigns/new").text  # the cookie keeps it
    assert "Kampanye" not in dash.client.get("/campaigns?lang=en").text


def test_hostile_text_in_a_campaign_stays_text(dash: Dash) -> None:
    hostile = SHUTDOWN.replace("name: TikTok Music is closing", 'name: "TikTok <script>alert(1)</script> & co"')
    r = dash.upload(hostile)
    assert r.status_code == 303  # saved: the pages below show the name, escaped
    assert "TikTok &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in dash.client.get(f"/campaigns/{CAMPAIGN}").text
    for path in ("/campaigns", f"/campaigns/{CAMPAIGN}", f"/campaigns/{CAMPAIGN}/gallery",
                 f"/campaigns/{CAMPAIGN}/edit"):
        page = dash.client.get(path)
        assert "<script>alert(1)" not in page.text, path
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"


def test_a_file_broken_on_disk_shows_its_problems_and_can_still_be_edited(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    (dash.campaigns / f"{CAMPAIGN}.yaml").write_text(SHUTDOWN.replace("channels: [email, push]", "channels: [fax]"))
    page = dash.client.get(f"/campaigns/{CAMPAIGN}")
    assert page.status_code == 422 and "fax" in page.text and f"/campaigns/{CAMPAIGN}/edit" in page.text
    assert dash.client.get(f"/campaigns/{CAMPAIGN}/edit").status_code == 200


@pytest.mark.parametrize("bad", ["a..b", "a%00b", "UPPER", "x" * 80])
def test_an_id_that_cannot_be_a_campaign_names_nothing(dash: Dash, bad: str) -> None:
    for path in (f"/campaigns/{bad}", f"/campaigns/{bad}/edit", f"/campaigns/{bad}/gallery"):
        assert dash.client.get(path).status_code == 404, path
    assert dash.post(f"/campaigns/{bad}/schedule").status_code == 404
    dash.upload(SHUTDOWN)
    assert dash.client.get(f"/campaigns/{CAMPAIGN}/recipients/a%00b").status_code == 404


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=400), st.builds(lambda a, b: SHUTDOWN[:a] + b + SHUTDOWN[a:],
                                                       st.integers(0, len(SHUTDOWN)), st.text(max_size=40))),
       rid=st.text(max_size=60), reason=st.text(max_size=60))
def test_no_generated_form_makes_the_dashboard_fail(dash: Dash, text: str, rid: str, reason: str) -> None:
    r = dash.client.post("/campaigns/new", data={"csrf": dash.csrf(), "text": text}, follow_redirects=False)
    assert r.status_code in (303, 400, 413, 422), r.text[:300]
    if r.status_code == 303:
        (dash.campaigns / r.headers["location"].split("/")[2].split("?")[0]).with_suffix(".yaml").unlink()
    found = dash.client.get(f"/campaigns/{CAMPAIGN}/recipients", params={"rid": rid})
    assert found.status_code in (200, 404, 409, 422), found.text[:300]
    retried = dash.post(f"/campaigns/{CAMPAIGN}/retry", reason=reason)
    assert retried.status_code in (303, 404, 409), retried.text[:300]


def test_a_draft_whose_templates_are_missing_shows_why_in_the_gallery(dash: Dash) -> None:
    dash.campaigns.mkdir(parents=True, exist_ok=True)
    ghost = SHUTDOWN.replace(f"id: {CAMPAIGN}", "id: ghost").replace(f"templates: {CAMPAIGN}", "templates: nowhere")
    (dash.campaigns / "ghost.yaml").write_text(ghost, encoding="utf-8")
    (dash.campaigns / "Bad Name.yaml").write_text(ghost, encoding="utf-8")
    (dash.campaigns / "new.yaml").write_text(ghost, encoding="utf-8")
    listing = dash.client.get("/campaigns").text
    assert 'data-campaign="ghost"' in listing and "Bad Name" not in listing and 'data-campaign="new"' not in listing
    assert dash.client.get("/campaigns/ghost/gallery").status_code == 422
    assert dash.client.get("/campaigns/ghost/progress").status_code == 409  # not scheduled
    assert dash.client.get("/campaigns/a%00b/progress").status_code == 404


def test_the_upload_page_s_own_name_is_no_campaign_id(dash: Dash) -> None:
    r = dash.upload(SHUTDOWN.replace(f"id: {CAMPAIGN}", "id: new"))
    assert r.status_code == 422 and "reserved" in r.text


@pytest.mark.parametrize("lang", ["en", "id"])
def test_every_skip_reason_and_category_has_words_in_each_language(lang: str) -> None:
    words = pages.env(lang).get_template("_words.html").module
    assert set(words.skip) == {r.value for r in SkipReason}  # a new reason needs its words here
    assert set(words.category) == set(CATEGORIES)
    if lang == "id":
        assert words.skip["suppressed"] == "alamat atau token ada di daftar blokir"
        assert all(w not in (k, k.replace("_", " ")) for k, w in words.skip.items())


def test_send_keys_wrap_between_waves_and_stay_escaped() -> None:
    assert str(pages.breakable("playlist-transfer@P30D+refund@P61D")) == \
        "playlist-transfer<wbr>@P30D+<wbr>refund<wbr>@P61D"
    assert str(pages.breakable('<b onmouseover="x">+')) == "&lt;b onmouseover=&#34;x&#34;&gt;+<wbr>"


# --- what the views say is what the dispatcher does (issue 23) ------------------------------------------------

BLOCKED = "the copy changed since it was approved: schedule again to approve it"
EMAIL_ONLY_REFUND = SHUTDOWN.replace("    skip_if: refund_requested\n",
                                     "    skip_if: refund_requested\n    channels: [email]\n")


def tick(dash: Dash, at: datetime) -> None:
    dispatcher = build_dispatcher(dash.settings, dash.sessions, simulated_clock=True)  # type: ignore[arg-type]
    try:
        dispatcher.tick(at)
    finally:
        dispatcher.close()


def test_a_campaign_whose_copy_changed_is_blocked_on_the_list_and_its_page_until_scheduled_again(
        own_copy: Dash) -> None:
    dash = own_copy
    dash.upload(SHUTDOWN)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    assert 'id="schedule"' not in dash.client.get(f"/campaigns/{CAMPAIGN}").text  # approved: nothing to schedule
    body = dash.settings.templates_dir / CAMPAIGN / "push_body.txt"  # type: ignore[attr-defined]
    body.write_text(body.read_text(encoding="utf-8") + "{# a typo fixed #}\n", encoding="utf-8")

    listing = dash.client.get("/campaigns").text
    row = re.search(rf'<tr data-campaign="{CAMPAIGN}">(.*?)</tr>', listing, re.S)[1]  # type: ignore[index]
    assert '<span class="state state-blocked">blocked</span>' in row
    assert f"<b>blocked:</b> {BLOCKED}" in listing
    page = dash.client.get(f"/campaigns/{CAMPAIGN}").text
    assert 'id="state" aria-live="polite">blocked<' in page
    assert f"<b>blocked:</b> {BLOCKED}" in page and f"<code>templates/{CAMPAIGN}/push_body.txt: changed</code>" in page
    assert re.search(r'<button type="submit" id="schedule">Schedule again</button>', page)
    fragment = dash.client.get(f"/campaigns/{CAMPAIGN}/progress").text
    assert 'data-phase="blocked"' in fragment and 'id="schedule"' in fragment  # the live part brings the button
    assert "diblokir" in dash.client.get(f"/campaigns/{CAMPAIGN}?lang=id").text

    assert dash.post(f"/campaigns/{CAMPAIGN}/schedule").status_code == 303  # schedule again: approve this copy
    page = dash.client.get(f"/campaigns/{CAMPAIGN}?lang=en").text
    assert BLOCKED not in page and 'id="state" aria-live="polite">sending<' in page
    assert 'id="schedule"' not in page


def test_the_recipient_page_plans_no_push_for_a_deadline_announced_by_email_only(dash: Dash) -> None:
    dash.upload(EMAIL_ONLY_REFUND)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    page = dash.client.get(f"/campaigns/{CAMPAIGN}/recipients/u00001").text  # an email and a push token
    planned = re.findall(r'<tr class="state-planned">(.*?)</tr>', page, re.S)
    pushes = [r for r in planned if "<td>push</td>" in r]
    emails = [r for r in planned if "<td>email</td>" in r]
    assert pushes and emails
    assert not [r for r in pushes if "refund" in r.lower()]  # never a push about the refund
    assert [r for r in emails if "refund" in r.lower()]


def test_the_gallery_says_the_push_of_an_email_only_deadline_is_never_sent(dash: Dash) -> None:
    dash.upload(EMAIL_ONLY_REFUND)
    page = dash.client.get(f"/campaigns/{CAMPAIGN}/gallery").text
    never = re.findall(r'<p class="warning" data-testid="never-sent">([^<]*)</p>', page)
    assert "never sent: this deadline is announced by email only" in never
    assert "never sent: not every deadline of it is announced by push" in never  # the first, merged send
    frames = len(re.findall(r'<iframe class="email"', page))
    phones = len(re.findall(r'<div class="phone" role="img"', page))
    samples = len(re.findall(r'<article class="message"', page))
    assert frames + phones + len(never) == 2 * samples and phones < frames  # each channel drawn or said never sent


def test_a_drafts_timeline_covers_the_zones_of_its_own_audience_countries(dash: Dash) -> None:
    dash.upload(SHUTDOWN.replace("countries: [ID, BR, AU, SG, MX]", "countries: [BR, MX, ID]"))
    page = dash.client.get(f"/campaigns/{CAMPAIGN}").text
    table = page[page.index("<details>"):]
    assert "America/Sao_Paulo" in table and "Asia/Jakarta" in table and "America/Mexico_City" in table
    assert "Australia/" not in page and "Asia/Singapore" not in page  # the demo's audience has both


def test_right_after_scheduling_the_pages_show_every_planned_message(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    with dash.sessions() as s:
        from notifier.reports import campaign_lines

        (line,) = campaign_lines(s)
    assert line.total == 0 and line.planned > 10_000  # nothing due yet, every message planned
    planned = f"{line.planned:,}"
    listing = dash.client.get("/campaigns").text
    assert f"0 of {planned} messages done" in listing and f'<td data-testid="sent">0 of {planned}</td>' in listing
    fragment = dash.client.get(f"/campaigns/{CAMPAIGN}/progress").text
    assert f"0 of {planned} messages done" in fragment and "send groups" not in fragment


def test_the_live_part_says_waves_and_waits_in_words(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    tick(dash, datetime(2024, 9, 28, 12, tzinfo=START.tzinfo))  # 22:00 in Sydney: its group waits for the morning
    fragment = dash.client.get(f"/campaigns/{CAMPAIGN}/progress").text
    first = "30 days before Playlist transfer, and 61 days before Refund requests and service closure"
    assert f'<span title="playlist-transfer@P30D+refund@P61D">{first}</span>' in fragment
    assert "<td>waiting for 08:00 local</td>" in fragment and "waiting to retry" not in fragment
    indonesian = dash.client.get(f"/campaigns/{CAMPAIGN}/progress?lang=id").text
    assert "30 hari sebelum Playlist transfer, dan 61 hari sebelum" in indonesian
    assert "menunggu pukul 08:00 waktu setempat" in indonesian


def test_the_live_part_brings_the_actions_so_a_finished_campaign_loses_pause_and_cancel(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    actions = re.compile(r'<template data-swap="actions">(.*?)</template>', re.S)
    sending = actions.search(dash.client.get(f"/campaigns/{CAMPAIGN}/progress").text)
    assert sending and 'id="pause"' in sending[1] and 'id="cancel"' in sending[1]
    with dash.sessions.begin() as s:  # every send has gone out and every message has its outcome
        s.execute(update(SendGroup).values(materialized_upto=10**9))
    fragment = dash.client.get(f"/campaigns/{CAMPAIGN}/progress").text
    finished = actions.search(fragment)
    assert 'data-phase="finished"' in fragment and finished
    assert 'id="pause"' not in finished[1] and 'id="cancel"' not in finished[1] and "/gallery" in finished[1]


def test_a_simulated_clock_shows_its_date_on_every_page(dash: Dash) -> None:
    assert 'id="clock"' not in dash.client.get("/campaigns").text  # a real clock needs no saying
    dash.client.app.state.dashboard.simulated_clock = True  # type: ignore[attr-defined]  # as the demo's
    dash.clock[0] = datetime(2024, 10, 21, 3, 0, tzinfo=START.tzinfo)
    assert "Simulated date: 2024-10-21 03:00 UTC" in dash.client.get("/campaigns").text
    dash.upload(SHUTDOWN)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    fragment = dash.client.get(f"/campaigns/{CAMPAIGN}/progress").text
    assert '<template data-swap="clock">Simulated date: 2024-10-21 03:00 UTC' in fragment  # follows the clock
    assert "Tanggal simulasi: 2024-10-21 03:00 UTC" in dash.client.get("/campaigns?lang=id").text


def test_a_recipient_page_does_not_call_a_wave_already_sent_not_sent(dash: Dash) -> None:
    dash.upload(SHUTDOWN)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    tick(dash, datetime(2024, 9, 28, 12, tzinfo=START.tzinfo))  # Makassar's first wave goes out
    dash.clock[0] = datetime(2024, 10, 21, tzinfo=START.tzinfo)
    page = dash.client.get(f"/campaigns/{CAMPAIGN}/recipients/u00001").text
    sent = re.findall(r'<tr class="state-sent">(.*?)</tr>', page, re.S)
    assert len(sent) == 2 and "not sent" not in page  # the notes explain the plan, not the clock


# --- who: a condition and a holdout on the results page; the daily cap on the recipient page -----------------

MARKETING = SHUTDOWN.replace("category: service ", "category: marketing").replace(
    "  countries: [ID, BR, AU, SG, MX]\n",
    '  countries: [ID, BR, AU, SG, MX]\n  where: plan in ["premium", "family"]\n  holdout: 10%\n')


def test_the_results_compare_the_holdout_with_those_sent_to(dash: Dash) -> None:
    from notifier.campaign import parse_campaign
    from notifier.eligibility import held_out
    from notifier.feedback import record_action

    assert dash.upload(MARKETING).status_code == 303
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    campaign = parse_campaign(MARKETING)
    with dash.sessions() as s:  # the audience counted here by hand: the countries and premium or family
        audience = sorted(rid for rid, country, attributes in s.execute(
            select(Recipient.id, Recipient.country, Recipient.attributes))
            if country in campaign.countries and (attributes or {}).get("plan") in ("premium", "family"))
    held = {rid for rid in audience if held_out(campaign, rid)}
    acted = set(sorted(set(audience) - held)[::2]) | set(sorted(held)[::5])  # half of those sent to, a fifth held
    with dash.sessions.begin() as s:
        for rid in sorted(acted):
            record_action(s, rid, "playlist_transferred", datetime(2024, 10, 2, 9, tzinfo=UTC), force=True)
    held_rate = len(held & acted) / len(held)
    sent_rate = len(acted - held) / (len(audience) - len(held))

    page = dash.client.get(f"/campaigns/{CAMPAIGN}/results")

    assert page.status_code == 200
    block = re.search(r'<div class="holdout" data-testid="holdout-playlist-transfer"(.*?)</dl>', page.text, re.S)
    assert block, "no holdout comparison"
    shown = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", block[1])).split())
    assert f"{100 * held_rate:.1f}%" in shown and f"{100 * sent_rate:.1f}%" in shown
    assert f"{(sent_rate - held_rate) * 100:+.1f}" in shown
    assert f"{len(held & acted):,} of {len(held):,} people" in shown
    assert f"{len(acted - held):,} of {len(audience) - len(held):,} people" in shown
    assert "Held out (got nothing)" in shown and "Who did playlist_transferred" in shown and "points" in shown
    assert 'data-testid="holdout-refund"' in page.text  # each deadline with an action has its own
    assert "Kelompok kontrol" in dash.client.get(f"/campaigns/{CAMPAIGN}/results?lang=id").text
    facts = html.unescape(dash.client.get(f"/campaigns/{CAMPAIGN}?lang=en").text)  # the campaign page says who, too
    assert '<code>plan in ["premium", "family"]</code>' in facts and "10% of the audience, chosen at random" in facts


def test_a_recipient_page_says_in_words_why_the_daily_cap_held_a_message_back(dash: Dash) -> None:
    from notifier.words import cap_wait

    dash.upload(SHUTDOWN)
    dash.post(f"/campaigns/{CAMPAIGN}/schedule")
    tick(dash, datetime(2024, 9, 28, 12, tzinfo=UTC))  # u00001's first email and push are sent
    waits = cap_wait(1, "email", ["spring-sale"])
    with dash.sessions.begin() as s:  # as notifier.daily_cap leaves them: one waits for a day, one is skipped
        rows = s.scalars(select(DeliveryRow).join(Recipient, Recipient.seq == DeliveryRow.recipient_seq)
                         .where(Recipient.id == "u00001").order_by(DeliveryRow.channel)).all()
        rows[0].state, rows[0].last_error = "pending", waits
        rows[1].state, rows[1].skip_reason = "skipped", SkipReason.CAPPED
        rows[1].last_error = f"{waits}, on every day left before the deadline"

    page = html.unescape(dash.client.get(f"/campaigns/{CAMPAIGN}/recipients/u00001").text)

    assert "waiting for the next day: the daily cap across campaigns (1 message a day) is taken today by " \
           "spring-sale" in page
    assert "the daily cap across campaigns was full on every day left before the deadline <code>capped</code>; " \
           "1 message a day, taken by spring-sale" in page
    assert "waiting to retry" not in page and "today's taken by" not in page  # the ledger's text is not shown
    indonesian = html.unescape(dash.client.get(f"/campaigns/{CAMPAIGN}/recipients/u00001?lang=id").text)
    assert "menunggu hari berikutnya" in indonesian and "1 pesan sehari, dipakai oleh spring-sale" in indonesian
