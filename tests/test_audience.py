"""Audience import: rows in, validated recipients or located rejections out, upserted into the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifier.audience import ImportReport, RecipientRecord, Rejection, import_audience, read_audience
from notifier.errors import AudienceError
from notifier.ledger.db import make_engine, session_factory, upgrade
from notifier.ledger.models import PushToken, Recipient

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HEADER = "id,email,name,locale,timezone,country,push_tokens"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def csv_file(tmp_path: Path, *rows: str, header: str = HEADER, name: str = "audience.csv") -> Path:
    return write(tmp_path, name, "\n".join([header, *rows]) + "\n")


def jsonl_file(tmp_path: Path, *lines: object, name: str = "audience.jsonl") -> Path:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return write(tmp_path, name, text + "\n")


def accepted(path: Path) -> list[RecipientRecord]:
    return [item for item in read_audience(path) if isinstance(item, RecipientRecord)]


def rejected(path: Path) -> list[Rejection]:
    return [item for item in read_audience(path) if isinstance(item, Rejection)]


def only_rejection(path: Path) -> Rejection:
    found = rejected(path)
    assert len(found) == 1, found
    return found[0]


def stored(sessions: sessionmaker[Session]) -> dict[str, Recipient]:
    with sessions() as s:
        return {r.id: r for r in s.scalars(select(Recipient))}


def tokens_of(sessions: sessionmaker[Session], recipient_id: str) -> dict[str, bool]:
    with sessions() as s:
        query = select(PushToken.token, PushToken.active).join(Recipient, Recipient.seq == PushToken.recipient_seq)
        return {token: active for token, active in s.execute(query.where(Recipient.id == recipient_id))}


# --- reading CSV and JSON Lines -------------------------------------------------------------------------


def test_csv_row_splits_tokens_and_keeps_attribute_columns_as_attributes(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "u1,Ana@Example.COM,Ana,pt_br,America/Sao_Paulo,br,tok-a|tok-b,gold,",
                    header=HEADER + ",attributes.plan,attributes.referrer")
    [record] = read_audience(path)
    assert record == RecipientRecord(
        id="u1", email="Ana@example.com", name="Ana", locale="pt-BR", timezone="America/Sao_Paulo",
        timezone_guessed=False, country="BR", push_tokens=("tok-a", "tok-b"), attributes={"plan": "gold"},
        joined_at=None, line=2,
    )


def test_jsonl_row_takes_token_list_attributes_object_and_unknown_keys_when_asked(tmp_path: Path) -> None:
    path = jsonl_file(tmp_path, {
        "id": "u1", "email": "ana@example.com", "locale": "en_us", "timezone": "Asia/Jakarta",
        "push_tokens": ["tok-a", "tok-a", " tok-b "], "attributes": {"plan": "gold", "seats": 3}, "tier": 2,
    })
    [record] = read_audience(path, extra_columns="attributes")
    assert isinstance(record, RecipientRecord)
    assert record.push_tokens == ("tok-a", "tok-b")
    assert record.attributes == {"plan": "gold", "seats": 3, "tier": 2}
    assert record.locale == "en-US"
    assert record.line == 1


@pytest.mark.parametrize(("given", "kept"), [("pt_br", "pt-BR"), ("pt-BR", "pt-BR"), ("EN_us", "en-US"), ("de", "de")])
def test_known_locale_is_normalized(tmp_path: Path, given: str, kept: str) -> None:
    path = csv_file(tmp_path, f"u1,ana@example.com,,{given},UTC,,")
    assert accepted(path)[0].locale == kept


def test_unknown_locale_is_kept_as_given_without_rejection(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "u1,ana@example.com,,xx-YY,UTC,,")
    assert [r.locale for r in read_audience(path)] == ["xx-YY"]


def test_blank_lines_are_skipped_but_still_count_as_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", f"{HEADER}\n\nu1,ana@example.com,,,UTC,,\n\n,bob@example.com,,,UTC,,\n")
    assert [(type(r).__name__, r.line) for r in read_audience(path)] == [("RecipientRecord", 3), ("Rejection", 5)]
    path = jsonl_file(tmp_path, "", {"id": "u1", "push_tokens": ["t"], "timezone": "UTC"}, "   ", "{")
    assert [(type(r).__name__, r.line) for r in read_audience(path)] == [("RecipientRecord", 2), ("Rejection", 4)]


def test_utf8_bom_does_not_hide_the_id_column(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(("\ufeff" + HEADER + "\nu1,ana@example.com,,,UTC,,\n").encode())
    assert [r.id for r in accepted(path)] == ["u1"]


def test_semicolon_csv_from_a_pt_br_or_es_mx_spreadsheet_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "excel-br.csv", "id;email;name;timezone;country;push_tokens;attributes.plan\n"
                                            "u1;ana@example.com;Silva, Ana;America/Sao_Paulo;BR;tok-a|tok-b;gold\n")
    [record] = accepted(path)
    assert (record.id, record.name, record.country, record.push_tokens, record.attributes) == (
        "u1", "Silva, Ana", "BR", ("tok-a", "tok-b"), {"plan": "gold"})


def test_a_comma_csv_whose_cells_hold_semicolons_stays_comma_separated(tmp_path: Path) -> None:
    path = csv_file(tmp_path, 'u1,ana@example.com,"Ana; Bia",,UTC,,')
    assert [(r.id, r.name) for r in accepted(path)] == [("u1", "Ana; Bia")]


def test_header_names_are_matched_case_insensitively(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "u1,ana@example.com,Ana,,UTC,BR,,gold", header="ID,Email,Name,Locale,TimeZone,Country,"
                                                                            "Push_Tokens,Attributes.Plan")
    [record] = accepted(path)
    assert (record.id, record.email, record.country, record.attributes) == ("u1", "ana@example.com", "BR",
                                                                            {"Plan": "gold"})


def test_an_id_column_named_twice_in_different_case_is_an_error(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "u1,u2,UTC", header="id,ID,timezone")
    with pytest.raises(AudienceError, match="column 'id' appears twice"):
        list(read_audience(path))


# --- rejections, each with its field and physical line --------------------------------------------------


@pytest.mark.parametrize(("row", "recipient_id", "field", "fragment"), [
    (",ana@example.com,,,UTC,,", None, "id", "an id is required"),
    ("   ,ana@example.com,,,UTC,,", None, "id", "an id is required"),
    ("x" * 129 + ",ana@example.com,,,UTC,,", None, "id", "longer than 128 characters"),
    ("u2,not-an-address,,,UTC,,", "u2", "email", "the email address is not valid"),
    ("u2,ana@example.com,,,Mars/Olympus_Mons,,", "u2", "timezone", "not an IANA time zone"),
    ("u2,ana@example.com,,,,USA,", "u2", "country", "not a two-letter ISO 3166 country code"),
    ("u2,ana@example.com,,,,QQ,", "u2", "country", "not a country code Babel knows"),
    ("u2,ana@example.com,,,,ZZ,", "u2", "country", "not a country code Babel knows"),
    ("u2,ana@example.com,,,,,", "u2", "timezone", "no country to guess it from"),
    ("u2,,Ana,,UTC,ID,", "u2", None, "no email address and no push token"),
    ("u2,,Ana,,UTC,ID,|", "u2", None, "no email address and no push token"),
    ("u2,ana@example.com,,,UTC,," + "|".join(f"t{i}" for i in range(21)), "u2", "push_tokens",
     "21 push tokens; at most 20 per recipient"),
])
def test_csv_rejection_names_field_and_line(
    tmp_path: Path, row: str, recipient_id: str | None, field: str | None, fragment: str
) -> None:
    path = csv_file(tmp_path, "u1,ana@example.com,,,UTC,,", row, "u3,bob@example.com,,,UTC,,")
    items = list(read_audience(path))
    assert [type(i) for i in items] == [RecipientRecord, Rejection, RecipientRecord]
    rejection = items[1]
    assert isinstance(rejection, Rejection)
    assert (rejection.file, rejection.line, rejection.recipient_id, rejection.field) == (
        str(path), 3, recipient_id, field)
    assert fragment in rejection.reason


def test_quoted_newlines_do_not_shift_the_line_of_a_later_bad_row(tmp_path: Path) -> None:
    path = csv_file(tmp_path, 'u1,ana@example.com,"Ana\nMaria\nSilva",,UTC,,', "u2,broken,,,UTC,,")
    first, second = read_audience(path)
    assert isinstance(first, RecipientRecord) and first.line == 2 and first.name == "Ana Maria Silva"
    assert isinstance(second, Rejection) and (second.line, second.field) == (5, "email")


def test_csv_row_with_more_cells_than_the_header_is_rejected(tmp_path: Path) -> None:
    rejection = only_rejection(csv_file(tmp_path, "u1,ana@example.com,,,UTC,,,surplus"))
    assert rejection.line == 2
    assert "8 cells" in rejection.reason


@pytest.mark.parametrize(("line", "field", "fragment"), [
    ('{"id": "u2", "email": ', None, "not valid JSON"),
    ('["u2", "ana@example.com"]', None, "expected a JSON object, got a list"),
    ('"u2"', None, "expected a JSON object, got text"),
    ('{"id": "u2", "timezone": "UTC", "push_tokens": "tok-a|tok-b"}', "push_tokens", "expected a list of strings"),
    ('{"id": "u2", "timezone": "UTC", "push_tokens": ["tok-a", 7]}', "push_tokens", "expected a list of strings"),
    ('{"id": "u2", "timezone": "UTC", "push_tokens": ["t"], "attributes": ["gold"]}', "attributes", "expected an obj"),
    ('{"id": "u2", "timezone": "UTC", "push_tokens": ["t"], "attributes": {"x": NaN}}', "attributes", "NaN"),
    ('{"id": "u2", "timezone": "UTC", "email": ["ana@example.com"]}', "email", "expected text, got a list"),
    ('{"id": true, "timezone": "UTC", "push_tokens": ["t"]}', "id", "expected text"),
])
def test_jsonl_rejection_names_line_and_the_import_goes_on(
    tmp_path: Path, line: str, field: str | None, fragment: str
) -> None:
    ok = {"id": "u1", "email": "ana@example.com", "timezone": "UTC"}
    path = jsonl_file(tmp_path, ok, line, {**ok, "id": "u3"})
    items = list(read_audience(path))
    assert [type(i) for i in items] == [RecipientRecord, Rejection, RecipientRecord]
    assert isinstance(items[1], Rejection)
    assert (items[1].line, items[1].field) == (2, field)
    assert fragment in items[1].reason


def test_numeric_id_in_jsonl_is_taken_as_text(tmp_path: Path) -> None:
    path = jsonl_file(tmp_path, {"id": 17, "email": "ana@example.com", "timezone": "UTC"})
    assert accepted(path)[0].id == "17"


@pytest.mark.parametrize("address", [
    "ana.maria@@example.com", "ana maria@example.com", "ana.maria@example", "ana.maria@exa_mple.com",
    "ana.maria.example.com", "ana.maria@xn--zz.com", "ana.maria@example.invalid", "ana.maria@" + "x" * 300 + ".com",
])
def test_rejection_never_contains_the_address(tmp_path: Path, address: str) -> None:
    for path in (csv_file(tmp_path, f"u1,{address},,,UTC,,"), jsonl_file(tmp_path, {"id": "u1", "email": address})):
        rejection = only_rejection(path)
        assert rejection.field == "email"
        for text in (address, address.split("@")[0], address.rpartition("@")[2]):
            assert text.lower() not in str(rejection).lower()


def test_rejection_reads_as_file_line_id_field_reason() -> None:
    assert str(Rejection("audience.csv", 17, "u17", "email", "the email address is not valid (x)")) == (
        "audience.csv:17: id u17: email: the email address is not valid (x)")
    assert str(Rejection("a.jsonl", 3, None, None, "not valid JSON")) == "a.jsonl:3: not valid JSON"


# --- time zones -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("country", "timezone"), [
    ("ID", "Asia/Jakarta"), ("br", "America/Sao_Paulo"), ("AU", "Australia/Sydney"), ("SG", "Asia/Singapore"),
    ("MX", "America/Mexico_City"), ("FR", "Europe/Paris"), ("JP", "Asia/Tokyo"),
])
def test_missing_timezone_is_guessed_from_the_country(tmp_path: Path, country: str, timezone: str) -> None:
    [record] = accepted(csv_file(tmp_path, f"u1,ana@example.com,,,,{country},"))
    assert (record.timezone, record.timezone_guessed, record.country) == (timezone, True, country.upper())


def test_given_timezone_wins_over_the_country(tmp_path: Path) -> None:
    [record] = accepted(csv_file(tmp_path, "u1,ana@example.com,,,Asia/Makassar,ID,"))
    assert (record.timezone, record.timezone_guessed) == ("Asia/Makassar", False)


# --- joined_at ------------------------------------------------------------------------------------------


def test_joined_at_naive_means_utc_and_offsets_are_converted(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "u1,a@example.com,,,UTC,,,2024-05-01T09:30:00", "u2,b@example.com,,,UTC,,,",
                    "u3,c@example.com,,,UTC,,,2024-05-01T09:30:00+07:00", "u4,d@example.com,,,UTC,,,yesterday",
                    header=HEADER + ",joined_at")
    items = list(read_audience(path))
    assert [getattr(i, "joined_at", None) for i in items[:3]] == [
        datetime(2024, 5, 1, 9, 30, tzinfo=UTC), None, datetime(2024, 5, 1, 2, 30, tzinfo=UTC)]
    assert isinstance(items[3], Rejection)
    assert (items[3].line, items[3].field) == (5, "joined_at")


# --- files that cannot be read at all -------------------------------------------------------------------


def test_unknown_extension_is_an_audience_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "audience.txt", HEADER + "\n")
    with pytest.raises(AudienceError, match=r"audience\.txt"):
        read_audience(path)
    with pytest.raises(AudienceError, match="'xml'"):
        read_audience(path, fmt="xml")


def test_format_argument_overrides_the_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "export.txt", json.dumps({"id": "u1", "email": "a@example.com", "timezone": "UTC"}))
    assert [r.id for r in read_audience(path, fmt="jsonl")] == ["u1"]


def test_missing_file_is_an_audience_error(tmp_path: Path) -> None:
    with pytest.raises(AudienceError, match="no such file"):
        read_audience(tmp_path / "nowhere.csv")


def test_csv_without_id_column_is_an_audience_error_on_line_1(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "ana@example.com,Ana", header="email,name")
    with pytest.raises(AudienceError, match=r"audience\.csv:1: .*no id column"):
        list(read_audience(path))


@pytest.mark.parametrize(("text", "fragment"), [("", "empty"), ("id,email,id\n", "appears twice")])
def test_empty_or_ambiguous_csv_header_is_an_audience_error(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(AudienceError, match=fragment):
        list(read_audience(write(tmp_path, "a.csv", text)))


def test_text_that_is_not_utf8_is_an_audience_error_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\nu1,jos\xe9@example.com,,,UTC,,\n").encode("latin-1"))
    with pytest.raises(AudienceError, match=r"latin1\.csv:2: not UTF-8 text \(byte 0xE9 at column 7\)"):
        list(read_audience(path))


# --- importing into the ledger (SQLite and PostgreSQL) ---------------------------------------------------


def test_import_inserts_recipients_and_their_tokens(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = csv_file(tmp_path, "u1,Ana@Example.com,Ana,pt_br,,BR,tok-a|tok-b,gold",
                    "u2,bob@example.com,Bob,xx-YY,Europe/Paris,FR,,", header=HEADER + ",attributes.plan")
    report = import_audience(sessions, path, now=NOW)
    assert report == ImportReport(file=str(path), accepted=2, inserted=2, guessed_timezones=1)
    rows = stored(sessions)
    ana = rows["u1"]
    assert (ana.email, ana.locale, ana.timezone, ana.timezone_guessed, ana.country) == (
        "Ana@example.com", "pt-BR", "America/Sao_Paulo", True, "BR")
    assert (ana.attributes, ana.joined_at, ana.updated_at, ana.import_line) == ({"plan": "gold"}, NOW, NOW, 2)
    assert rows["u2"].locale == "xx-YY"
    assert tokens_of(sessions, "u1") == {"tok-a": True, "tok-b": True}
    assert tokens_of(sessions, "u2") == {}


def test_import_of_jsonl(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = jsonl_file(tmp_path, {"id": "u1", "country": "ID", "push_tokens": ["tok-a"], "attributes": {"seats": 3}},
                      "not json", {"id": "u2", "email": "b@example.com", "timezone": "UTC", "attributes.plan": "gold"})
    seen: list[Rejection] = []
    report = import_audience(sessions, path, now=NOW, on_reject=seen.append)
    assert (report.accepted, report.inserted, report.rejected, report.guessed_timezones) == (2, 2, 1, 1)
    assert [r.line for r in seen] == [2]
    rows = stored(sessions)
    assert (rows["u1"].timezone, rows["u1"].attributes, rows["u2"].attributes) == (
        "Asia/Jakarta", {"seats": 3}, {"plan": "gold"})


def test_reimport_updates_the_recipient_and_replaces_tokens_keeping_a_deactivated_one_deactivated(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    import_audience(sessions, csv_file(tmp_path, "u1,ana@example.com,Ana,,UTC,,tok-a|tok-b|tok-c"), now=NOW)
    with sessions.begin() as s:
        s.execute(update(PushToken).where(PushToken.token == "tok-b")
                  .values(active=False, deactivated_at=NOW, deactivated_reason="unregistered"))
    later = NOW + timedelta(days=1)
    path = csv_file(tmp_path, "u1,ana.new@example.com,Ana M,,Asia/Jakarta,,tok-b|tok-d", name="again.csv")
    report = import_audience(sessions, path, now=later)
    assert (report.accepted, report.inserted, report.updated) == (1, 0, 1)
    ana = stored(sessions)["u1"]
    assert (ana.email, ana.name, ana.timezone, ana.updated_at, ana.joined_at) == (
        "ana.new@example.com", "Ana M", "Asia/Jakarta", later, NOW)
    assert tokens_of(sessions, "u1") == {"tok-b": False, "tok-d": True}


def test_duplicate_id_is_rejected_across_batch_boundaries(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = csv_file(tmp_path,
                    "u1,first@example.com,,,UTC,,",   # line 2, batch 1
                    "u2,b@example.com,,,UTC,,",       # line 3, batch 1
                    "u3,c@example.com,,,UTC,,",       # line 4, batch 2
                    "u1,second@example.com,,,UTC,,",  # line 5, batch 2: u1 was stored by batch 1
                    "u4,d@example.com,,,UTC,,",       # line 6, batch 3
                    "u4,e@example.com,,,UTC,,")       # line 7, batch 3: duplicate inside the batch
    seen: list[Rejection] = []
    report = import_audience(sessions, path, now=NOW, on_reject=seen.append, batch_size=2)
    assert [str(r) for r in seen] == [
        f"{path}:5: id u1: id: duplicate id u1 (first on line 2)",
        f"{path}:7: id u4: id: duplicate id u4 (first on line 6)",
    ]
    assert (report.accepted, report.inserted, report.rejected) == (4, 4, 2)
    rows = stored(sessions)
    assert (rows["u1"].email, rows["u4"].email) == ("first@example.com", "d@example.com")


def test_importing_the_same_file_again_updates_instead_of_reporting_duplicates(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = csv_file(tmp_path, "u1,a@example.com,,,UTC,,", "u2,b@example.com,,,UTC,,", "u3,c@example.com,,,UTC,,")
    import_audience(sessions, path, now=NOW, batch_size=2)
    report = import_audience(sessions, path, now=NOW, batch_size=2)
    assert (report.accepted, report.inserted, report.updated, report.rejected) == (3, 0, 3, 0)


def test_joined_at_defaults_to_now_and_is_kept_on_update_unless_the_file_gives_one(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    header = HEADER + ",joined_at"
    first = csv_file(tmp_path, "u1,a@example.com,,,UTC,,,", "u2,b@example.com,,,UTC,,,2020-01-01T00:00:00Z",
                     header=header)
    import_audience(sessions, first, now=NOW)
    assert {k: r.joined_at for k, r in stored(sessions).items()} == {
        "u1": NOW, "u2": datetime(2020, 1, 1, tzinfo=UTC)}
    again = csv_file(tmp_path, "u1,a@example.com,,,UTC,,,2019-06-01T08:00:00+02:00", "u2,b@example.com,,,UTC,,,",
                     header=header, name="again.csv")
    import_audience(sessions, again, now=NOW + timedelta(days=3))
    assert {k: r.joined_at for k, r in stored(sessions).items()} == {
        "u1": datetime(2019, 6, 1, 6, 0, tzinfo=UTC), "u2": datetime(2020, 1, 1, tzinfo=UTC)}


def test_rejected_rows_leave_accepted_rows_stored(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = csv_file(tmp_path, "u1,a@example.com,,,UTC,,", "u2,broken,,,UTC,,", "u3,c@example.com,,,,QQ,")
    report = import_audience(sessions, path, now=NOW, batch_size=1)
    assert (report.accepted, report.rejected) == (1, 2)
    assert set(stored(sessions)) == {"u1"}


def test_unreadable_format_raises_before_touching_the_ledger(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with pytest.raises(AudienceError, match=r"audience\.xlsx"):
        import_audience(sessions, write(tmp_path, "audience.xlsx", "id\n"), now=NOW)
    assert stored(sessions) == {}


def test_naive_now_is_refused(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aware"):
        import_audience(sessions, csv_file(tmp_path), now=datetime(2026, 1, 1))


# --- a large file, SQLite only --------------------------------------------------------------------------


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'big.db'}")
    upgrade(engine)
    yield session_factory(engine)
    engine.dispose()


def generate_audience(path: Path, rows: int) -> None:
    """Every 1000th row has a bad email; row 19999 repeats the id of row 1 (far apart, many batches)."""
    countries = ("ID", "BR", "AU", "SG", "MX")
    with path.open("w", encoding="utf-8") as f:
        f.write(HEADER + ",attributes.plan\n")
        for i in range(1, rows + 1):
            rid = "r1" if i == 19_999 else f"r{i}"
            email = "broken" if i % 1000 == 0 else f"user{i}@example.com"
            tz = "" if i % 2 else "Europe/Berlin"
            f.write(f"{rid},{email},User {i},pt_br,{tz},{countries[i % 5]},tok{i}a|tok{i}b,p{i % 3}\n")


def test_import_of_20000_generated_rows(sqlite_sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    generate_audience(path, 20_000)
    seen: list[Rejection] = []
    report = import_audience(sqlite_sessions, path, now=NOW, on_reject=seen.append, batch_size=500)
    assert report == ImportReport(file=str(path), accepted=19_979, inserted=19_979, updated=0, rejected=21,
                                  guessed_timezones=9_999)
    assert f"{path}:20000: id r1: id: duplicate id r1 (first on line 2)" in [str(r) for r in seen]
    with sqlite_sessions() as s:
        assert s.scalar(select(func.count()).select_from(Recipient)) == 19_979
        assert s.scalar(select(func.count()).select_from(PushToken)) == 2 * 19_979
