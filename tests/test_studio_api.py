"""The studio through its JSON API alone (/api/v1): the Acme journey a marketer makes in the browser, made by a
client of ``notifier serve`` instead, from a starter to the last message on a simulated clock; the token, the caps
and the located problems; and the round trip of a campaign made here through ``campaign export``/``import``."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po, write_po
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from notifier.config import Settings
from notifier.demo import SimulatedClock, Simulation
from notifier.ledger.db import make_engine, session_factory, upgrade
from notifier.ledger.models import DeliveryRow
from notifier.studio import store
from notifier.studio.uploads import join_upload
from notifier.web import create_app
from notifier.wiring import build_dispatcher
from tests.conftest import ROOT, TEST_SECRETS

TOKEN = "an-api-token-for-the-studio-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
START = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)  # before the first wave (30 days before 1 March) anywhere
CANCELLED_AT = datetime(2027, 2, 5, 12, 0, tzinfo=UTC)  # c02 cancels after the first wave, before the second
ACME = "acme-price"
WAVES = ("cancel@P30D", "cancel@P7D", "cancel@P1D")
API = "/api/v1"


def acme_form(client: TestClient) -> dict[str, Any]:
    """The price-change starter as Acme Stream fills it in: BR, MX, ID; en, pt-BR, id; cancel before 1 March."""
    form = client.get(f"{API}/starters", headers=BEARER).json()["price-change"]
    form.update(id=ACME, name="Acme Stream price increase", sender_name="Acme Stream",
                sender_email="hello@acme-stream.example", locales=["en", "pt-BR", "id"], countries=["BR", "MX", "ID"],
                links={"plans": "https://acme-stream.example/plans"})
    form["deadlines"] = [{"id": "cancel", "label": "Cancel before the new price", "at": "2027-03-01T00:00",
                          "waves": ["P30D", "P7D", "P1D"], "skip_if": "subscription_cancelled", "link": "plans"}]
    return form


# customer, e-mail, tz, country, language, full name, push: the header the marketer's export has
AUDIENCE = [
    ("c01", "ana@acme.example", "America/Sao_Paulo", "BR", "pt-BR", "Ana Souza", "ana-phone"),
    ("c02", "bruno@acme.example", "America/Sao_Paulo", "BR", "pt-BR", "Bruno Lima", ""),
    ("c03", "carla@acme.example", "America/Sao_Paulo", "BR", "pt-BR", "Carla Dias", ""),
    ("c04", "diego@acme.example", "America/Mexico_City", "MX", "es-MX", "Diego Ruiz", "diego-phone"),
    ("c05", "elena@acme.example", "America/Mexico_City", "MX", "es-MX", "Elena Cruz", ""),
    ("c06", "fajar@acme.example", "Asia/Jakarta", "ID", "id", "Fajar Putra", "fajar-phone"),
    ("c07", "gita@acme.example", "Asia/Jakarta", "ID", "id", "Gita Sari", ""),
    ("c08", "not-an-address", "Asia/Jakarta", "ID", "id", "Hadi Nugroho", ""),  # rejected: the address
    ("", "ika@acme.example", "Asia/Jakarta", "ID", "id", "Ika Lestari", ""),  # rejected: no id
]
GOOD = [row for row in AUDIENCE if row[0] and "@" in row[1]]
MAPPING = {"customer": "id", "e-mail": "email", "tz": "timezone", "language": "locale", "full name": "name",
           "push": "push_tokens"}


def audience_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["customer", "e-mail", "tz", "country", "language", "full name", "push"])
    writer.writerows(AUDIENCE)
    return out.getvalue().encode()


def translated_po(data: bytes, locale: str, mark: str) -> bytes:
    """A translator's work outside: every entry of the exported PO translated (babel reads and writes it)."""
    catalog = read_po(io.BytesIO(data), locale=locale)
    for message in catalog:
        if not message.id:
            continue
        if message.pluralizable:
            message.string = tuple(f"{mark} {message.id[1]}" for _ in range(catalog.num_plurals))
        else:
            message.string = f"{mark} {message.id}"
        message.flags.discard("fuzzy")
    out = io.BytesIO()
    write_po(out, catalog)
    return out.getvalue()


def translated_entries(entries: list[dict[str, Any]], mark: str) -> dict[str, list[str]]:
    """The PUT body that translates every entry: one text per plural form of the locale."""
    return {e["key"]: [f"{mark} {e['source'][-1]}"] * max(1, len(e["plural_names"])) for e in entries}


def studio_settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(api_token=TOKEN, studio_dir=tmp_path / "studio", outbox_dir=tmp_path / "outbox",
                    campaigns_dir=tmp_path / "campaigns", transport="outbox", **TEST_SECRETS).with_(**changes)


def upload_audience(client: TestClient) -> dict[str, Any]:
    """The audience, mapped, imported in the background; polled until done."""
    response = client.post(f"{API}/audience/uploads", content=audience_csv(), headers=BEARER,
                           params={"file_name": "acme-subscribers.csv", "mapping": json.dumps(MAPPING)})
    assert response.status_code == 202, response.text
    upload_id = response.json()["id"]
    join_upload(upload_id, timeout=60)
    deadline = time.monotonic() + 60
    while (status := client.get(f"{API}/audience/uploads/{upload_id}", headers=BEARER).json())["state"] != "done":
        assert status["state"] in ("waiting", "importing") and time.monotonic() < deadline, status
        time.sleep(0.05)
    return status


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(START)


@pytest.fixture
def client(tmp_path: Path, sessions: sessionmaker[Session], clock: SimulatedClock) -> Iterator[TestClient]:
    with TestClient(create_app(studio_settings(tmp_path), sessions, clock=clock.now)) as c:
        yield c


def outbox_emails(outbox: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted((outbox / "email").rglob("*.eml"))]


def outbox_pushes(outbox: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((outbox / "push").rglob("*.json"))]


# --- the journey ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_acme_journey_through_the_api_alone_ends_with_each_due_message_sent_once(
        client: TestClient, tmp_path: Path, sessions: sessionmaker[Session], clock: SimulatedClock) -> None:
    settings = client.app.state.web.settings  # type: ignore[attr-defined]
    # A campaign from a starter: version 1, its translations missing (the gate says so, by file and line).
    created = client.post(f"{API}/campaigns", json=acme_form(client), headers=BEARER)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    assert {p["file"] for p in created.json()["problems"]} >= {f"locales/{loc}/LC_MESSAGES/{ACME}.po"
                                                               for loc in ("pt_BR", "id")}
    info = client.get(f"{API}/campaigns/{ACME}", headers=BEARER).json()
    assert (info["state"], info["locales"], info["source_locale"]) == ("draft", ["en", "pt-BR", "id"], "en")

    # The words, once, in English.
    words = client.get(f"{API}/campaigns/{ACME}/words", headers=BEARER).json()
    words["stages"]["announcement"]["subject"] = "Acme Stream's price changes: {deadline} by {date}"
    words["stages"]["announcement"]["push_body"] = "Cancel by {date} to keep today's price."
    saved = client.put(f"{API}/campaigns/{ACME}/words", json=words, headers=BEARER)
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] == 2

    # pt-BR by a translator: the PO exported, edited with babel outside, imported back.
    exported = client.get(f"{API}/campaigns/{ACME}/translations/pt-BR.po", headers=BEARER)
    assert exported.status_code == 200 and "acme-price.pt_BR.po" in exported.headers["content-disposition"]
    assert b"Acme Stream's price changes: %(deadline)s by %(date)s" in exported.content
    imported = client.put(f"{API}/campaigns/{ACME}/translations/pt-BR.po",
                          content=translated_po(exported.content, "pt_BR", "[pt]"), headers=BEARER)
    assert imported.status_code == 200, imported.text
    assert not [p for p in imported.json()["problems"] if "pt_BR" in p["file"] or "pt-BR" in (p["field"] or "")]

    # id in the side-by-side editor: the entries, then a PUT of every translation as JSON.
    entries = client.get(f"{API}/campaigns/{ACME}/translations/id", headers=BEARER).json()
    assert {e["status"] for e in entries} == {"missing"}
    put = client.put(f"{API}/campaigns/{ACME}/translations/id", json=translated_entries(entries, "[id]"),
                     headers=BEARER)
    assert put.status_code == 200, put.text
    assert put.json()["problems"] == []
    assert {e["status"] for e in client.get(f"{API}/campaigns/{ACME}/translations/id", headers=BEARER).json()} \
        == {"done"}

    # The gate is clean; every locale x send x channel previews as it will be sent.
    gate = client.get(f"{API}/campaigns/{ACME}/gate", headers=BEARER).json()
    assert gate["errors"] == []
    choices = client.get(f"{API}/campaigns/{ACME}/preview/choices", headers=BEARER).json()
    assert [s["send_key"] for s in choices["sends"]] == list(WAVES)
    for locale, mark in (("en", "Acme Stream's price changes"), ("pt-BR", "[pt]"), ("id", "[id]")):
        email_preview = client.get(f"{API}/campaigns/{ACME}/preview", headers=BEARER, params={
            "locale": locale, "send": "cancel@P30D", "channel": "email"}).json()
        assert mark in email_preview["subject"] and "<html" in email_preview["html"].lower(), email_preview
        for send in WAVES:
            push = client.get(f"{API}/campaigns/{ACME}/preview", headers=BEARER, params={
                "locale": locale, "send": send, "channel": "push"}).json()
            assert push["title"] and push["body"] and not [p for p in push["problems"] if "limit" in p], push

    # The audience: e-mail and tz mapped; two rows rejected, downloadable as CSV with line and reason.
    sniffed = client.post(f"{API}/audience/sniff", content=audience_csv(), headers=BEARER,
                          params={"file_name": "acme-subscribers.csv"}).json()
    assert (sniffed["suggestions"]["e-mail"], sniffed["suggestions"]["tz"]) == ("email", "timezone")
    status = upload_audience(client)
    assert (status["accepted"], status["rejected"], status["percent"]) == (len(GOOD), 2, 100)
    rejects = client.get(f"{API}/audience/uploads/{status['id']}/rejects.csv", headers=BEARER)
    assert rejects.status_code == 200 and rejects.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(rejects.text)))
    assert lines[0] == ["line", "reason"] and [row[0] for row in lines[1:]] == ["9", "10"]

    # The dry run's totals: three waves, email to everyone, push to those with a phone; nothing written.
    pushes = sum(1 for row in GOOD if row[6])
    dry = client.post(f"{API}/campaigns/{ACME}/dry-run", headers=BEARER).json()
    assert (dry["recipients"], dry["messages"]) == (len(GOOD), 3 * (len(GOOD) + pushes)), dry
    assert sum(r["messages"] for r in dry["rows"]) == dry["messages"]
    forward = client.post(f"{API}/campaigns/{ACME}/fast-forward", headers=BEARER, params={"limit": 5})
    assert forward.status_code == 200, forward.text
    assert forward.json()["counts"].get("sent") == forward.json()["messages_total"] == dry["messages"]
    assert len(forward.json()["messages"]) == min(5, dry["messages"])
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(DeliveryRow)) == 0

    # A test send to the seeds lands in the outbox, marked as a test, and is never counted.
    seeds = [{"channel": "email", "address": "marketing@acme-stream.example", "name": "Acme Marketing",
              "locale": "pt-BR"}, {"channel": "push", "address": "marketing-phone-token"}]
    assert client.put(f"{API}/campaigns/{ACME}/seeds", json=seeds, headers=BEARER).status_code == 200
    sent = client.post(f"{API}/campaigns/{ACME}/test-send", headers=BEARER,
                       json={"locale": "pt-BR", "send": "cancel@P7D", "channel": "email"})
    assert sent.status_code == 200, sent.text
    assert [r["outcome"] for r in sent.json()["results"]] == ["sent"]
    tests = outbox_emails(settings.outbox_dir)
    assert len(tests) == 1 and tests[0]["Subject"].startswith("[Test]") and "[pt]" in tests[0]["Subject"]
    assert tests[0]["X-Notifier-Test"] == "1"

    # Scheduled: the planned total from the first second, in messages; then played to the end.
    progress = client.post(f"{API}/campaigns/{ACME}/schedule", headers=BEARER).json()
    assert (progress["planned"], progress["done"], progress["phase"]) == (dry["messages"], 0, "sending")
    play_to_the_end(client, settings, sessions, clock)

    final = client.get(f"{API}/campaigns/{ACME}/progress", headers=BEARER).json()
    assert (final["phase"], final["percent"], final["done"]) == ("finished", 100, final["planned"])
    assert final["skipped_because"] == {"action_done": 2 * 1}  # c02's P7D and P1D emails (no phone)
    assert_each_due_message_sent_once(settings.outbox_dir)


def play_to_the_end(client: TestClient, settings: Settings, sessions: sessionmaker[Session],
                    clock: SimulatedClock) -> None:
    """The demo's simulated clock, shared with the app: c02 cancels (POST /actions) between the first and second
    waves, and the later waves skip them."""
    dispatcher = build_dispatcher(settings, sessions, simulated_clock=True)
    sim, cancelled = Simulation(sessions, dispatcher, []), False
    try:
        for _ in range(10_000):
            if not cancelled and clock.now() >= CANCELLED_AT:
                answer = client.post("/actions", headers=BEARER, json={"actions": [
                    {"recipient_id": "c02", "action": "subscription_cancelled", "at": clock.now().isoformat()}]})
                assert answer.json()["recorded"] == 1, answer.text
                cancelled = True
            wake = sim.step(clock.now())
            if wake is None:
                break
            clock.advance(min(wake, CANCELLED_AT) if not cancelled and clock.now() < CANCELLED_AT else wake)
        else:
            raise AssertionError("the campaign did not end")
    finally:
        dispatcher.close()
    assert cancelled


def assert_each_due_message_sent_once(outbox: Path) -> None:
    due_email = Counter((row[1], wave) for row in GOOD for wave in WAVES
                        if not (row[0] == "c02" and wave != "cancel@P30D"))
    due_push = Counter((row[6], wave) for row in GOOD if row[6] for wave in WAVES)
    got_email = Counter((m["To"].addresses[0].addr_spec, m["X-Notifier-Send-Key"])
                        for m in outbox_emails(outbox) if not m["Subject"].startswith("[Test]"))
    got_push = Counter((doc["tokens"][0], doc["data"]["send_key"]) for doc in outbox_pushes(outbox))
    assert got_email == due_email
    assert got_push == due_push


# --- on PostgreSQL too, through an app that opens the ledger by its URL ------------------------------------------


def test_a_campaign_made_translated_and_scheduled_through_the_api_on_the_ledger_url(
        tmp_path: Path, ledger_url: str, sessions: sessionmaker[Session]) -> None:
    settings = studio_settings(tmp_path, database_url=ledger_url)
    with TestClient(create_app(settings, clock=lambda: START)) as client:
        assert client.post(f"{API}/campaigns", json=acme_form(client), headers=BEARER).status_code == 201
        for locale, mark in (("pt-BR", "[pt]"), ("id", "[id]")):
            entries = client.get(f"{API}/campaigns/{ACME}/translations/{locale}", headers=BEARER).json()
            saved = client.put(f"{API}/campaigns/{ACME}/translations/{locale}", headers=BEARER,
                               json=translated_entries(entries, mark))
            assert saved.status_code == 200, saved.text
        assert saved.json()["problems"] == [] and saved.json()["version"] == 3
        xliff = client.get(f"{API}/campaigns/{ACME}/translations/id.xlf", headers=BEARER)
        back = client.put(f"{API}/campaigns/{ACME}/translations/id.xlf", content=xliff.content, headers=BEARER)
        assert client.get(f"{API}/campaigns/{ACME}/gate", headers=BEARER).json()["errors"] == []
        assert upload_audience(client)["accepted"] == len(GOOD)
        ana = client.get(f"{API}/campaigns/{ACME}/preview", headers=BEARER, params={
            "locale": "pt-BR", "send": "cancel@P7D", "channel": "email", "recipient": "c01"}).json()
        dry = client.post(f"{API}/campaigns/{ACME}/dry-run", headers=BEARER).json()
        scheduled = client.post(f"{API}/campaigns/{ACME}/schedule", headers=BEARER).json()
        paused = client.post(f"{API}/campaigns/{ACME}/pause", headers=BEARER).json()
        again = client.post(f"{API}/campaigns/{ACME}/pause", headers=BEARER)
        resumed = client.post(f"{API}/campaigns/{ACME}/resume", headers=BEARER).json()
        cancelled = client.post(f"{API}/campaigns/{ACME}/cancel", headers=BEARER).json()
        info = client.get(f"{API}/campaigns/{ACME}", headers=BEARER).json()

    assert (scheduled["planned"], scheduled["state"], scheduled["phase"]) == (dry["messages"], "scheduled", "sending")
    assert (paused["state"], again.status_code, resumed["state"]) == ("paused", 409, "scheduled")
    assert (cancelled["state"], info["state"], info["version"]) == ("cancelled", "cancelled", 3)
    assert xliff.headers["content-type"].startswith("application/xliff+xml") and b'version="2.0"' in xliff.content
    assert (back.status_code, back.json()["version"], back.json()["problems"]) == (200, 3, [])  # no change
    assert "Ana Souza" in ana["text"] and ana["subject"].startswith("[pt]")
    with sessions() as s:
        assert store.latest_version(s, ACME).origin == "api"  # type: ignore[union-attr]


# --- export and import: the files a team keeps in git -----------------------------------------------------------


def notifier_cli(*args: str, database: Path, studio: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NOTIFIER_DATABASE_URL": f"sqlite:///{database}", "NOTIFIER_STUDIO_DIR": str(studio)}
    return subprocess.run([sys.executable, "-m", "notifier", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_campaign_made_through_the_api_exported_and_imported_with_the_cli_is_byte_exact(
        client: TestClient, acme: str, tmp_path: Path, engine: Any) -> None:
    exported = client.get(f"{API}/campaigns/{acme}/translations/pt-BR.po", headers=BEARER)
    client.put(f"{API}/campaigns/{acme}/translations/pt-BR.po", headers=BEARER,
               content=translated_po(exported.content, "pt_BR", "[pt]"))
    with session_factory(engine)() as s:
        original, version = store.read_bundle(s, acme), store.latest_version(s, acme)
    assert version is not None and version.version == 2
    folder, other = tmp_path / "git" / "acme", tmp_path / "other.db"
    database = Path(engine.url.database)

    written = notifier_cli("campaign", "export", acme, str(folder), database=database, studio=tmp_path / "s1")
    upgrade(make_engine(f"sqlite:///{other}"))
    imported = notifier_cli("campaign", "import", str(folder), database=other, studio=tmp_path / "s2")
    again = notifier_cli("campaign", "import", str(folder), database=database, studio=tmp_path / "s1")

    assert written.returncode == 0, written.stderr
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == original
    assert imported.returncode == 0 and "stored as version 1" in imported.stdout, imported.stderr
    with session_factory(make_engine(f"sqlite:///{other}"))() as s:
        assert store.read_bundle(s, acme) == original
        assert store.latest_version(s, acme).fingerprint == version.fingerprint  # type: ignore[union-attr]
    assert again.returncode == 0 and "unchanged, still version 2" in again.stdout, again.stderr
    zipped = client.get(f"{API}/campaigns/{acme}/export", headers=BEARER)
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as z:
        assert {name: z.read(name) for name in z.namelist()} == original


# --- the token, the caps, the located problems ------------------------------------------------------------------


@pytest.fixture
def acme(client: TestClient) -> str:
    """Acme's campaign, created through the API (its translations still missing)."""
    assert client.post(f"{API}/campaigns", json=acme_form(client), headers=BEARER).status_code == 201
    return ACME


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-of-the-same-length-0123456789ab"},
                                     {"Authorization": f"Basic {TOKEN}"}], ids=["none", "wrong", "basic"])
def test_without_the_right_bearer_token_every_studio_endpoint_is_401_and_nothing_is_stored(
        client: TestClient, acme: str, tmp_path: Path, headers: dict[str, str]) -> None:
    calls = [("get", f"{API}/campaigns/{acme}", {}), ("get", f"{API}/starters", {}),
             ("post", f"{API}/campaigns", {"json": {**acme_form(client), "id": "other"}}),
             ("put", f"{API}/campaigns/{acme}/file", {"content": b"id: x\n"}),
             ("put", f"{API}/campaigns/{acme}/translations/id.po", {"content": b"msgid \"\"\nmsgstr \"\"\n"}),
             ("post", f"{API}/audience/uploads?file_name=a.csv", {"content": audience_csv()}),
             ("post", f"{API}/campaigns/{acme}/schedule", {}), ("get", f"{API}/campaigns/{acme}/progress", {})]
    for method, url, kwargs in calls:
        response = getattr(client, method)(url, headers=headers, **kwargs)
        assert (response.status_code, "error" in response.json()) == (401, True), url
    info = client.get(f"{API}/campaigns/{acme}", headers=BEARER).json()
    assert info["version"] == 1 and info["state"] == "draft"
    assert not list((tmp_path / "studio" / "uploads").glob("*"))


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_without_a_configured_token_the_studio_api_is_off_with_503_saying_so(
        tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    with TestClient(create_app(studio_settings(tmp_path, api_token=None), sessions)) as c:
        response = c.get(f"{API}/starters", headers=BEARER)

    assert response.status_code == 503
    assert "NOTIFIER_API_TOKEN is not set" in response.json()["error"] and "/api/v1" in response.json()["error"]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_an_unknown_campaign_locale_or_upload_is_404(client: TestClient, acme: str) -> None:
    for method, url in [("get", "campaigns/nope"), ("get", "campaigns/nope/words"), ("get", "campaigns/nope/gate"),
                        ("get", "campaigns/nope/translations/id"), ("get", "campaigns/nope/translations/id.po"),
                        ("post", "campaigns/nope/dry-run"), ("post", "campaigns/nope/schedule"),
                        ("get", "campaigns/nope/progress"), ("get", "campaigns/..%2E/words"),
                        ("get", f"campaigns/{acme}/translations/fr"), ("get", f"campaigns/{acme}/translations/fr.xlf"),
                        ("get", f"campaigns/{acme}/preview/choices?x=1".replace(acme, "nope")),
                        ("get", "audience/uploads/0b4e9a1e-0000-4000-8000-000000000000"),
                        ("get", "audience/uploads/nope/rejects.csv"), ("post", f"campaigns/{acme}/explode")]:
        response = getattr(client, method)(f"{API}/{url}", headers=BEARER)
        assert response.status_code == 404, (url, response.text)
        assert response.json()["error"], url


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_starter_form_with_wrong_fields_is_422_with_each_problem_named_by_its_field(client: TestClient) -> None:
    form = acme_form(client)
    form["deadlines"][0]["waves"] = ["P30D", "thirty days"]
    form["locales"] = "en"

    response = client.post(f"{API}/campaigns", json=form, headers=BEARER)

    assert response.status_code == 422
    fields = {p["field"] for p in response.json()["problems"]}
    assert "locales" in fields
    form["locales"] = ["en", "pt-BR", "id"]
    checked = client.post(f"{API}/campaigns/check", json=form, headers=BEARER)
    assert checked.status_code == 200
    assert [p["field"] for p in checked.json()["problems"]] == ["deadlines[0].waves[1]"]
    refused = client.post(f"{API}/campaigns", json=form, headers=BEARER)
    assert refused.status_code == 422
    assert [p["field"] for p in refused.json()["problems"]] == ["deadlines[0].waves[1]"]
    assert client.get(f"{API}/campaigns/{ACME}", headers=BEARER).status_code == 404


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_condition_and_a_holdout_are_checked_on_their_fields_then_kept_as_written(client: TestClient) -> None:
    form = acme_form(client)
    form.update(category="marketing", where='plan in ["premium", "family" and country != "SG"', holdout="10%")
    form["deadlines"][0]["where"] = 'plan == "family"'
    checked = client.post(f"{API}/campaigns/check", json=form, headers=BEARER).json()["problems"]
    assert [(p["field"], p["message"][:10]) for p in checked] == [("where", "column 30:")]
    form["where"] = 'plan in ["premium", "family"] and country != "SG"'
    assert client.post(f"{API}/campaigns", json=form, headers=BEARER).status_code == 201
    made = client.get(f"{API}/campaigns/{ACME}", headers=BEARER).json()
    assert (made["where"], made["holdout"]) == (form["where"], "10%")
    assert made["deadlines"][0]["where"] == 'plan == "family"'
    dry = client.post(f"{API}/campaigns/{ACME}/dry-run", headers=BEARER).json()
    assert {"matching", "held_out"} <= set(dry)


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_second_campaign_with_a_taken_id_is_refused_on_its_id_field(client: TestClient, acme: str) -> None:
    response = client.post(f"{API}/campaigns", json=acme_form(client), headers=BEARER)

    assert response.status_code == 422
    assert [(p["field"], "exists already" in p["message"]) for p in response.json()["problems"]] == [("id", True)]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_broken_campaign_file_is_422_with_its_line_and_makes_no_version(client: TestClient, acme: str) -> None:
    text = client.get(f"{API}/campaigns/{acme}", headers=BEARER).json()["file"]
    broken = text.replace("\ndeadlines:", "\nwhat: [\ndeadlines:", 1)

    response = client.put(f"{API}/campaigns/{acme}/file", content=broken.encode(), headers=BEARER)

    assert response.status_code == 422, response.text
    problem = response.json()["problems"][0]
    assert problem["file"] == f"campaigns/{acme}.yaml" and problem["line"] is not None
    renamed = client.put(f"{API}/campaigns/{acme}/file", content=text.replace(f'id: "{acme}"', 'id: "other"').encode(),
                         headers=BEARER)
    assert renamed.status_code == 422 and renamed.json()["problems"][0]["field"] == "id"
    assert client.put(f"{API}/campaigns/{acme}/file", content=b"\xff\xfe", headers=BEARER).status_code == 422
    assert client.get(f"{API}/campaigns/{acme}", headers=BEARER).json()["version"] == 1
    same = client.put(f"{API}/campaigns/{acme}/file", content=text.encode(), headers=BEARER)
    assert (same.status_code, same.json()["version"]) == (200, 1)  # an identical file makes no new version
    renamed_name = text.replace("Acme Stream price increase", "Acme Stream new prices", 1)
    assert client.put(f"{API}/campaigns/{acme}/file", content=renamed_name.encode(),
                      headers=BEARER).json()["version"] == 2


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_oversized_bodies_are_413_before_they_are_read(client: TestClient, acme: str) -> None:
    big_yaml = b"# " + b"x" * (256 * 1024) + b"\n"
    big_po = b"# " + b"x" * (1024 * 1024) + b"\n"
    big_json = {"id": "x" * (256 * 1024)}

    assert client.put(f"{API}/campaigns/{acme}/file", content=big_yaml, headers=BEARER).status_code == 413
    assert client.put(f"{API}/campaigns/{acme}/translations/id.po", content=big_po, headers=BEARER).status_code == 413
    assert client.post(f"{API}/campaigns", json=big_json, headers=BEARER).status_code == 413
    huge = {**BEARER, "Content-Length": str(3 * 1024**3)}
    assert client.post(f"{API}/audience/uploads?file_name=a.csv", content=b"id\n", headers=huge).status_code == 413


GARBAGE: list[tuple[str, str, dict[str, Any]]] = [
    ("put", "campaigns/{id}/file", {"content": b"\x00\x01not yaml: [\n"}),
    ("put", "campaigns/{id}/file", {"content": b"- a list\n- not a campaign\n"}),
    ("put", "campaigns/{id}/words", {"json": {"stages": {"announcement": {"subject": 42}}}}),
    ("put", "campaigns/{id}/words", {"json": {"stages": {"reminder": {"subject": "{nonsense} {days"}}}}),
    ("put", "campaigns/{id}/words", {"content": b"{not json"}),
    ("put", "campaigns/{id}/translations/id", {"json": {"no such entry": ["x"]}}),
    ("put", "campaigns/{id}/translations/id", {"json": {"k": "not a list"}}),
    ("put", "campaigns/{id}/translations/id", {"json": ["a", "list"]}),
    ("put", "campaigns/{id}/translations/id.po", {"content": b"\x89PNG\r\n\x1a\n binary"}),
    ("put", "campaigns/{id}/translations/id.po", {"content": b'msgid "a"\nmsgstr "b'}),
    ("put", "campaigns/{id}/translations/id.xlf", {"content": b"<xliff><unclosed"}),
    ("put", "campaigns/{id}/translations/id.xlf", {"content": b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
                                                              b"<x>&e;</x>"}),
    ("get", "campaigns/{id}/preview?locale=id&send=nope@P1D&channel=email", {}),
    ("get", "campaigns/{id}/preview?locale=id&send=cancel@P1D&channel=fax", {}),
    ("get", "campaigns/{id}/preview?locale=id&send=cancel@P1D&channel=email&recipient=nobody", {}),
    ("get", "campaigns/{id}/preview", {}),
    ("post", "campaigns/{id}/test-send", {"json": {"locale": "fr", "send": "x", "channel": "email"}}),
    ("post", "campaigns/{id}/test-send", {"json": {"locale": "id"}}),
    ("put", "campaigns/{id}/seeds", {"json": [{"channel": "email", "address": "not an address"}]}),
    ("put", "campaigns/{id}/seeds", {"json": [{"channel": "fax", "address": "x"}]}),
    ("post", "campaigns/{id}/pause", {}),
    ("post", "campaigns", {"json": {"id": "../../etc", "deadlines": "soon"}}),
    ("post", "campaigns", {"content": b"\xff"}),
    ("post", "audience/sniff?file_name=a.bin", {"content": bytes(range(256)) * 10}),
    ("post", "audience/sniff?file_name=a.csv&mapping=[1]", {"content": b"id\n1\n"}),
    ("post", "audience/uploads?file_name=a.csv", {"content": b""}),
    ("post", "audience/uploads?file_name=a.csv&format=xls", {"content": b"id\n1\n"}),
    ("post", "audience/uploads?file_name=../../a.exe", {"content": b"\x00\x01\x02"}),
]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("method", "url", "kwargs"), GARBAGE, ids=[f"{m} {u[:40]}" for m, u, _ in GARBAGE])
def test_wrong_input_is_refused_in_json_and_never_a_500(client: TestClient, acme: str, method: str, url: str,
                                                        kwargs: dict[str, Any]) -> None:
    response = getattr(client, method)(f"{API}/{url.format(id=acme)}", headers=BEARER, **kwargs)

    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")
    if response.status_code == 422:
        assert response.json()["error"] and isinstance(response.json()["problems"], list)
    elif response.status_code >= 400:
        assert response.json()["error"]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_openapi_document_describes_every_studio_action_with_its_models(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]

    for path, method in [("/campaigns", "post"), ("/campaigns/check", "post"), ("/campaigns/{campaign_id}", "get"),
                         ("/campaigns/{campaign_id}/file", "put"), ("/campaigns/{campaign_id}/words", "put"),
                         ("/campaigns/{campaign_id}/translations/{locale}", "put"),
                         ("/campaigns/{campaign_id}/translations/{locale}.po", "put"),
                         ("/campaigns/{campaign_id}/translations/{locale}.xlf", "get"),
                         ("/campaigns/{campaign_id}/gate", "get"), ("/campaigns/{campaign_id}/preview", "get"),
                         ("/audience/sniff", "post"), ("/audience/uploads", "post"),
                         ("/audience/uploads/{upload_id}/rejects.csv", "get"),
                         ("/campaigns/{campaign_id}/dry-run", "post"),
                         ("/campaigns/{campaign_id}/fast-forward", "post"),
                         ("/campaigns/{campaign_id}/seeds", "put"), ("/campaigns/{campaign_id}/test-send", "post"),
                         ("/campaigns/{campaign_id}/{action}", "post"), ("/campaigns/{campaign_id}/progress", "get")]:
        operation = paths[f"{API}{path}"][method]
        assert {"401", "422", "503"} <= set(operation["responses"]), path
        if method in ("put", "post") and not path.endswith(("}", "dry-run", "fast-forward")):
            assert operation["requestBody"]["content"], path
    assert {"StarterIn", "SavedOut", "CampaignOut", "EntryOut", "PreviewOut", "UploadOut"} <= set(
        doc["components"]["schemas"])
    assert doc["components"]["securitySchemes"]["NOTIFIER_API_TOKEN"]["scheme"] == "bearer"


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_an_imported_po_entry_that_drops_a_placeholder_is_refused_by_file_and_line_and_the_rest_is_taken(
        client: TestClient, acme: str) -> None:
    exported = client.get(f"{API}/campaigns/{acme}/translations/id.po", headers=BEARER).content
    catalog = read_po(io.BytesIO(translated_po(exported, "id", "[id]")), locale="id")
    broken = next(m for m in catalog if m.id and not m.pluralizable and "%(date)s" in m.id)
    broken.string = "[id] tanpa tanggal"
    out = io.BytesIO()
    write_po(out, catalog)

    response = client.put(f"{API}/campaigns/{acme}/translations/id.po", content=out.getvalue(), headers=BEARER,
                          params={"file_name": "from-the-translator.po"})

    assert response.status_code == 200, response.text
    refused = [p for p in response.json()["problems"] if p["file"] == "from-the-translator.po"]
    assert len(refused) == 1 and refused[0]["line"] and "date" in refused[0]["message"], refused
    statuses = {e["key"]: e["status"] for e in client.get(f"{API}/campaigns/{acme}/translations/id",
                                                           headers=BEARER).json()}
    assert statuses.pop(broken.id) == "missing" and set(statuses.values()) == {"done"}


def test_a_change_made_from_an_older_version_is_409_with_if_match_and_nothing_is_overwritten(
        client: TestClient, acme: str) -> None:
    version = client.get(f"{API}/campaigns/{acme}", headers=BEARER).json()["version"]
    words = client.get(f"{API}/campaigns/{acme}/words", headers=BEARER).json()
    words["stages"]["announcement"]["subject"] = "Tab A's subject by {date}"
    first = client.put(f"{API}/campaigns/{acme}/words", json=words, headers={**BEARER, "If-Match": f'"{version}"'})
    assert first.status_code == 200, first.text
    words["stages"]["announcement"]["subject"] = "Tab B's subject by {date}"
    second = client.put(f"{API}/campaigns/{acme}/words", json=words, headers={**BEARER, "If-Match": f'"{version}"'})
    assert second.status_code == 409 and f"version {first.json()['version']} was saved" in second.json()["error"]
    kept = client.get(f"{API}/campaigns/{acme}/words", headers=BEARER).json()
    assert kept["stages"]["announcement"]["subject"] == "Tab A's subject by {date}"
    assert client.put(f"{API}/campaigns/{acme}/words", json=words,
                      headers={**BEARER, "If-Match": "latest"}).status_code == 400


def test_an_upload_without_a_mapping_takes_the_mapping_sniff_suggests(client: TestClient) -> None:
    csv = b"id,e-mail,tz,country,plan\nu1,ana@acme.example,America/Sao_Paulo,BR,basic\nu2,x@acme.example,,MX,pro\n"
    response = client.post(f"{API}/audience/uploads", content=csv, headers=BEARER,
                           params={"file_name": "acme-subscribers.csv"})
    assert response.status_code == 202, response.text
    join_upload(response.json()["id"], timeout=60)
    status = client.get(f"{API}/audience/uploads/{response.json()['id']}", headers=BEARER).json()
    assert (status["state"], status["accepted"], status["rejected"]) == ("done", 2, 0), status


def test_a_translation_is_checked_before_it_is_saved_with_a_token_only(client: TestClient) -> None:
    assert client.post(f"{API}/campaigns", json=acme_form(client), headers=BEARER).status_code == 201
    check = f"{API}/campaigns/{ACME}/translations/id/check"
    entries = client.get(f"{API}/campaigns/{ACME}/translations/id", headers=BEARER).json()
    dated = next(e["key"] for e in entries if "%(date)s" in e["key"] and "%(" not in e["key"].replace("%(date)s", ""))
    dropped = client.post(check, json={"key": dated, "forms": ["Tanpa tanggal"]}, headers=BEARER)
    assert dropped.status_code == 200
    assert dropped.json() == {"status": "done", "problems": ["form 0 drops placeholder(s) date"]}
    good = client.post(check, json={"key": dated, "forms": [dated]}, headers=BEARER).json()
    assert good == {"status": "done", "problems": []}
    assert client.post(check, json={"key": "no such", "forms": ["x"]}, headers=BEARER).status_code == 404
    assert client.post(check, json={"key": dated}, headers=BEARER).status_code == 422
    assert client.post(check, json={"key": dated, "forms": ["x"]}).status_code == 401
    after = client.get(f"{API}/campaigns/{ACME}/translations/id", headers=BEARER).json()
    assert after == entries  # nothing saved
    doc = client.get("/openapi.json").json()
    assert "TranslationCheckIn" in doc["components"]["schemas"]
