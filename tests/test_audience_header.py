"""An audience file's columns are checked before anything is stored (issue 23, item 1): a column that names no field
is refused with a suggestion, unless the file (``attributes.NAME``) or the user (``--extra-columns attributes``) says
where extra columns go; a misspelt time zone rejects its row with a suggestion, the one campaigns get too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from notifier import zones
from notifier.audience import EXTRA_COLUMNS, import_audience, read_audience
from notifier.audience._columns import suggestion
from notifier.campaign import zone as campaign_zone
from notifier.cli import cli
from notifier.errors import AudienceError
from notifier.ledger.models import Recipient
from tests.conftest import ROOT
from tests.test_audience import NOW, stored

ISSUE_HEADER = "id,e-mail,name,locale,tz,country"
ISSUE_REFUSAL = ("unknown columns 'e-mail' (column 2: did you mean 'email'?), 'tz' (column 5: did you mean "
                 "'timezone'?); nothing was imported")


def tijuana_rows(n: int = 20) -> list[str]:
    """Recipients in Tijuana, which a zone guessed from the country would put in Mexico City (two hours off)."""
    return [f"u{i:02d},user{i:02d}@example.com,User {i},es-MX,America/Tijuana,MX" for i in range(1, n + 1)]


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def jsonl(path: Path, *records: dict[str, Any]) -> Path:
    return write(path, *(json.dumps(r) for r in records))


def notifier(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, as marketing runs it: user errors are one line on stderr and exit code 2."""
    return subprocess.run([sys.executable, "-m", "notifier", "--database-url", url, *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def count(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Recipient)) or 0)


# --- the issue's file -------------------------------------------------------------------------------------


def test_the_issues_file_is_refused_naming_each_column_with_its_suggestion_and_nothing_is_stored(
        sessions: sessionmaker[Session], ledger_url: str, tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", ISSUE_HEADER, *tijuana_rows())
    result = notifier(ledger_url, "audience", "import", str(path), "--now", "2024-09-01T00:00Z")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == f"error: {path}:1: {ISSUE_REFUSAL}\n"
    assert "Traceback" not in result.stderr and "@" not in result.stderr
    assert result.stdout == ""
    assert count(sessions) == 0


def test_a_zone_column_under_another_name_never_sends_tijuana_at_mexico_city_time(
        sessions: sessionmaker[Session], ledger_url: str, tmp_path: Path) -> None:
    """The issue's 10 accepted rows: reachable by push, their tz column was dropped and the zone guessed."""
    rows = [f"{row},tok-{i}" if i % 2 else f"{row}," for i, row in enumerate(tijuana_rows(), 1)]
    path = write(tmp_path / "audience.csv", ISSUE_HEADER + ",push_tokens", *rows)
    result = notifier(ledger_url, "audience", "import", str(path))
    assert result.returncode == 2
    assert f"{path}:1: {ISSUE_REFUSAL}" in result.stderr
    assert count(sessions) == 0


def test_the_extra_columns_option_does_not_take_a_misnamed_field_as_an_attribute(
        sessions: sessionmaker[Session], ledger_url: str, tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", ISSUE_HEADER, *tijuana_rows())
    result = notifier(ledger_url, "audience", "import", str(path), "--extra-columns", "attributes")
    assert result.returncode == 2
    assert result.stderr == (f"error: {path}:1: {ISSUE_REFUSAL} (a column that looks like a field is not kept as an "
                             "attribute: name it attributes.NAME to keep it)\n")
    assert count(sessions) == 0


def test_the_issues_file_with_its_columns_named_imports_with_extra_columns_as_attributes_when_asked(
        sessions: sessionmaker[Session], ledger_url: str, tmp_path: Path) -> None:
    header = "id,email,name,locale,timezone,country,plan,signup_source"
    path = write(tmp_path / "audience.csv", header, *(f"{row},gold,store" for row in tijuana_rows()))

    refused = notifier(ledger_url, "audience", "import", str(path))
    assert refused.returncode == 2
    assert refused.stderr == (
        f"error: {path}:1: unknown columns 'plan' (column 7), 'signup_source' (column 8); nothing was imported. "
        "Known columns: id, email, name, locale, timezone, country, push_tokens, joined_at, refund_amount, "
        "refund_currency. To keep them as attributes, name them attributes.NAME or pass --extra-columns attributes\n")
    assert count(sessions) == 0

    kept = notifier(ledger_url, "audience", "import", str(path), "--extra-columns", "attributes")
    assert kept.returncode == 0, kept.stderr
    assert "20 accepted (20 new, 0 updated), 0 rejected, 0 time zones guessed" in kept.stdout
    rows = stored(sessions)
    assert {(r.timezone, r.timezone_guessed) for r in rows.values()} == {("America/Tijuana", False)}
    assert {json.dumps(r.attributes, sort_keys=True) for r in rows.values()} == {
        '{"plan": "gold", "signup_source": "store"}'}


def test_columns_named_attributes_dot_name_are_attributes_without_the_option(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "id,email,timezone,Attributes.plan,attributes.refund_requested",
                 "u1,ana@example.com,America/Tijuana,gold,yes", "u2,bob@example.com,America/Tijuana,,")
    report = import_audience(sessions, path, now=NOW)
    assert (report.accepted, report.rejected) == (2, 0)
    rows = stored(sessions)
    assert (rows["u1"].attributes, rows["u2"].attributes) == ({"plan": "gold", "refund_requested": "yes"}, {})


def test_the_cli_offers_exactly_the_importers_choices() -> None:
    option = next(p for p in cli.commands["audience"].commands["import"].params  # type: ignore[attr-defined]
                  if p.name == "extra_columns")
    assert tuple(option.type.choices) == EXTRA_COLUMNS and option.default == "error"


# --- what a header must have ------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "message"), [
    ("email,name,timezone", "no id column; nothing was imported"),
    ("id,name,timezone,country", "no email or push_tokens column (nothing could reach anyone); nothing was imported"),
    ("user_id,mail,tz", "unknown columns 'user_id' (column 1: did you mean 'id'?), 'mail' (column 2: did you mean "
                        "'email'?), 'tz' (column 3: did you mean 'timezone'?); nothing was imported"),
    ("id,email,attributes.", "unknown column 'attributes.' (column 3: an attribute needs a name after "
                             "'attributes.'); nothing was imported"),
    ("id,email,plan,attributes.plan", "column 'attributes.plan' appears twice in the header"),
])
def test_a_header_without_what_a_row_needs_is_refused_before_anything_is_stored(
        sessions: sessionmaker[Session], tmp_path: Path, header: str, message: str) -> None:
    path = write(tmp_path / "audience.csv", header, "u1,ana@example.com,America/Tijuana,MX")
    with pytest.raises(AudienceError) as raised:
        import_audience(sessions, path, now=NOW, extra_columns="attributes" if "plan" in header else "error")
    assert str(raised.value) == f"{path}:1: {message}"
    assert count(sessions) == 0


def test_a_file_without_a_header_is_refused_without_quoting_its_first_address(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", *tijuana_rows(2))
    with pytest.raises(AudienceError) as raised:
        next(read_audience(path, extra_columns="attributes"))
    assert str(raised.value).startswith(f"{path}:1: column 2 of the header holds an email address: the first line "
                                        "must name the columns (id, email, name, ")
    assert "@" not in str(raised.value).replace(str(path), "")


def test_a_file_without_a_header_and_without_an_address_quotes_none_of_its_first_row(tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "u1,Ana Souza,,pt-BR,America/Sao_Paulo,BR,tok-secret-123")
    with pytest.raises(AudienceError) as raised:
        next(read_audience(path))
    message = str(raised.value)
    assert message.startswith(f"{path}:1: the first line names no column we know: is the header line missing?")
    assert "Ana" not in message and "tok-secret" not in message


def test_the_header_is_judged_before_any_row_is_read(tmp_path: Path) -> None:
    """Streaming stays: the refusal comes from line 1 alone (line 2 is not even UTF-8)."""
    path = tmp_path / "audience.csv"
    path.write_bytes(ISSUE_HEADER.encode() + b"\nu1,jos\xe9@example.com,,,,MX\n")
    with pytest.raises(AudienceError, match=r"audience\.csv:1: unknown columns 'e-mail'"):
        next(read_audience(path))


@pytest.mark.parametrize(("column", "field"), [
    ("e-mail", "email"), ("E-Mail", "email"), ("Email Address", "email"), ("mail", "email"), ("emial", "email"),
    ("tz", "timezone"), ("time_zone", "timezone"), ("Time Zone", "timezone"), ("timezon", "timezone"),
    ("lang", "locale"), ("language", "locale"), ("country_code", "country"), ("push_token", "push_tokens"),
    ("user_id", "id"), ("joined", "joined_at"), ("currency", "refund_currency"),
    ("plan", None), ("signup_source", None), ("referrer", None), ("x" * 10_000, None),
])
def test_a_column_name_suggests_the_field_it_most_likely_means(column: str, field: str | None) -> None:
    assert suggestion(column) == field


# --- JSON Lines: the first record's keys are the header ---------------------------------------------------


def test_jsonl_first_record_with_misnamed_keys_is_refused_before_anything_is_stored(
        sessions: sessionmaker[Session], ledger_url: str, tmp_path: Path) -> None:
    records = [{"id": f"u{i}", "e-mail": f"user{i}@example.com", "tz": "America/Tijuana", "country": "MX"}
               for i in range(1, 21)]
    path = jsonl(tmp_path / "audience.jsonl", *records)
    for extra in ("error", "attributes"):
        result = notifier(ledger_url, "audience", "import", str(path), "--extra-columns", extra)
        assert result.returncode == 2
        assert result.stderr.startswith(
            f"error: {path}:1: unknown keys 'e-mail' (did you mean 'email'?), 'tz' (did you mean 'timezone'?) in the "
            "first record; nothing was imported")
        assert "@" not in result.stderr
    assert count(sessions) == 0


def test_jsonl_unknown_key_in_a_later_record_rejects_that_record_with_its_line(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = jsonl(tmp_path / "audience.jsonl",
                 {"id": "u1", "email": "ana@example.com", "timezone": "America/Tijuana"},
                 {"id": "u2", "e-mail": "bob@example.com", "timezone": "America/Tijuana"},
                 {"id": "u3", "email": "eva@example.com", "timezone": "America/Tijuana", "plan": "gold"},
                 {"id": "u4", "email": "ian@example.com", "timezone": "America/Tijuana", "attributes.plan": "gold"})
    seen: list[str] = []
    report = import_audience(sessions, path, now=NOW, on_reject=lambda r: seen.append(str(r)))
    assert seen == [f"{path}:2: id u2: unknown key 'e-mail' (did you mean 'email'?)",
                    f"{path}:3: id u3: unknown key 'plan'"]
    assert (report.accepted, report.rejected) == (2, 2)
    assert {k: r.attributes for k, r in stored(sessions).items()} == {"u1": {}, "u4": {"plan": "gold"}}


def test_jsonl_extra_keys_are_attributes_when_asked_and_the_attributes_object_wins(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = jsonl(tmp_path / "audience.jsonl",
                 {"id": "u1", "email": "ana@example.com", "timezone": "UTC", "tier": 2, "attributes": {"tier": 3}},
                 {"id": "u2", "email": "bob@example.com", "timezone": "UTC", "plan": "gold", "tz": "UTC"})
    seen: list[str] = []
    report = import_audience(sessions, path, now=NOW, on_reject=lambda r: seen.append(str(r)),
                             extra_columns="attributes")
    assert seen == [f"{path}:2: id u2: unknown key 'tz' (did you mean 'timezone'?)"]
    assert report.accepted == 1 and stored(sessions)["u1"].attributes == {"tier": 3}


# --- a misspelt time zone ---------------------------------------------------------------------------------


def test_a_misspelt_zone_rejects_its_row_with_the_zone_it_most_likely_means(
        sessions: sessionmaker[Session], ledger_url: str, tmp_path: Path) -> None:
    path = write(tmp_path / "audience.csv", "id,email,timezone,country",
                 "u1,ana@example.com,America/Sao_Paulo,BR", "u2,bia@example.com,America/Sao_Paolo,BR",
                 "u3,caio@example.com,Sao Paulo,BR", "u4,duda@example.com,America/Tijuana,MX")
    result = notifier(ledger_url, "audience", "import", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"rejected {path}:3: id u2: timezone: 'America/Sao_Paolo' is not an IANA time zone "
        "(did you mean 'America/Sao_Paulo'?)",
        f"rejected {path}:4: id u3: timezone: 'Sao Paulo' is not an IANA time zone (did you mean 'America/Sao_Paulo'?)",
    ]
    assert set(stored(sessions)) == {"u1", "u4"}


@pytest.mark.parametrize(("name", "meant"), [
    ("America/Sao_Paolo", "America/Sao_Paulo"), ("Sao Paulo", "America/Sao_Paulo"), ("Tijuana", "America/Tijuana"),
    ("Mexico/Tijuana", "America/Tijuana"), ("Asia/Jakata", "Asia/Jakarta"), ("jakarta", "Asia/Jakarta"),
    ("America/Mexico City", "America/Mexico_City"), ("Pacific/Auckand", "Pacific/Auckland"),
    ("GMT+7", None),  # never Etc/GMT+7: that zone is UTC-7
    ("Asia", None), ("Mars/Olympus_Mons", None), ("factory", None), ("x" * 100_000, None),
])
def test_one_suggestion_for_a_zone_name_everywhere(name: str, meant: str | None) -> None:
    assert zones.closest(name) == meant
    if meant is not None:
        reason = f"{name!r} is not an IANA time zone (did you mean {meant!r}?)"
        assert zones.reason(name) == reason
        with pytest.raises(ValueError) as raised:
            campaign_zone(name)
        assert str(raised.value) == reason
