"""Hostile or malformed audience input is harmless: a located row rejection or safe stored data, never a traceback,
never a valid row dropped silently. Every test imports into the real ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from email.header import decode_header, make_header
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from notifier import zones
from notifier.audience import ImportReport, Rejection, import_audience
from notifier.campaign import zone as campaign_zone
from notifier.errors import AudienceError
from notifier.ledger.models import PushToken, Recipient
from tests.conftest import ROOT
from tests.test_audience import HEADER, NOW, csv_file, jsonl_file, stored, tokens_of

WJ = "\u2060"  # WORD JOINER, put between "=" and "?"
OK = {"email": "ok@example.com", "timezone": "UTC"}


def run_import(sessions: sessionmaker[Session], path: Path, **kw: Any) -> tuple[ImportReport, list[str]]:
    seen: list[Rejection] = []
    report = import_audience(sessions, path, now=NOW, on_reject=seen.append, **kw)
    return report, [str(r) for r in seen]


@contextmanager
def third_batch_fails(engine: Engine, cause: Exception) -> Iterator[None]:
    """The third INSERT of recipients fails with ``cause`` as the driver's error: the batches before it are stored."""
    inserts = 0

    def fail_third_batch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal inserts
        if statement.startswith("INSERT INTO recipients"):
            inserts += 1
            if inserts == 3:
                raise OperationalError(statement, {}, cause)

    event.listen(engine, "before_cursor_execute", fail_third_batch)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", fail_third_batch)


def around(bad: dict[str, Any]) -> list[dict[str, Any]]:
    """A bad JSON Lines row on line 2, between two valid ones."""
    return [{"id": "before", **OK}, {"id": "bad", **OK, **bad}, {"id": "after", **OK}]


def assert_only_rejected(sessions: sessionmaker[Session], path: Path, line: int, reason: str) -> None:
    """The one bad row is rejected on ``line`` for ``reason``; the rows "before" and "after" it are stored."""
    report, rejected = run_import(sessions, path)
    assert rejected == [f"{path}:{line}: {reason}"]
    assert (report.accepted, report.rejected) == (2, 1)
    assert set(stored(sessions)) == {"before", "after"}


# --- 1. names are cleaned, never a reason to reject -------------------------------------------------------

HOSTILE_NAMES = [
    ("=?utf-8?b?ZXZpbEB4LmNvbSwgb3RoZXJAeS5jb20=?=", f"={WJ}?utf-8?b?ZXZpbEB4LmNvbSwgb3RoZXJAeS5jb20={WJ}?="),
    ("=?utf-8?q?Ana=00Bcc:_evil@x.com?=", f"={WJ}?utf-8?q?Ana=00Bcc:_evil@x.com?="),
    ("Ana\r\nBcc: evil@x.com", "Ana Bcc: evil@x.com"),
    ("Ana\x00Maria", "Ana Maria"),
    ("\ue000Ana\ue001 \uf8ffSilva", "Ana Silva"),
    ("Ana \u202egnp.exe\u202c \u2066x\u2069", "Ana gnp.exe x"),
    ("\x85Ana\u2028Maria\u2029\x7f\x1b[31m", "Ana Maria [31m"),
    ("Ana   \t Maria", "Ana Maria"),
    ("n" * 300, "n" * 200),
    ("\ue000\u202e", None),
]


def test_hostile_names_are_neutralised_at_import_and_their_rows_kept(sessions: sessionmaker[Session],
                                                                     tmp_path: Path) -> None:
    lines = [{"id": f"u{i}", **OK, "name": given} for i, (given, _) in enumerate(HOSTILE_NAMES)]
    path = jsonl_file(tmp_path, *lines, {"id": "clean", **OK, "name": "José da Silva"})
    report, rejected = run_import(sessions, path)
    assert (rejected, report.accepted, report.cleaned_names) == ([], len(HOSTILE_NAMES) + 1, len(HOSTILE_NAMES))
    rows = stored(sessions)
    assert [rows[f"u{i}"].name for i in range(len(HOSTILE_NAMES))] == [kept for _, kept in HOSTILE_NAMES]
    assert rows["clean"].name == "José da Silva"


def test_no_stored_name_decodes_as_an_rfc2047_encoded_word(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    names = [given for given, _ in HOSTILE_NAMES[:2]]
    import_audience(sessions, jsonl_file(tmp_path, *({"id": f"u{i}", **OK, "name": n} for i, n in enumerate(names))),
                    now=NOW)
    for recipient in stored(sessions).values():
        assert recipient.name is not None and "=?" not in recipient.name
        decoded = str(make_header(decode_header(recipient.name)))
        assert decoded == recipient.name  # nothing decoded: no hidden address, no encoded NUL
        assert "\x00" not in decoded


def test_csv_names_with_line_breaks_and_nul_are_cleaned_and_counted(sessions: sessionmaker[Session],
                                                                    tmp_path: Path) -> None:
    path = csv_file(tmp_path, "u1,a@example.com,Ana,,UTC,,", 'u2,b@example.com,"Ana\r\nBcc: x@y.com",,UTC,,',
                    "u3,c@example.com,Bo\x00b \ue001,,UTC,,", "u4,d@example.com,Dee,,UTC,,")
    report, rejected = run_import(sessions, path)
    assert (rejected, report.accepted, report.cleaned_names) == ([], 4, 2)
    rows = stored(sessions)
    assert [rows[k].name for k in ("u1", "u2", "u3", "u4")] == ["Ana", "Ana Bcc: x@y.com", "Bo b", "Dee"]
    assert stored(sessions)["u4"].import_line == 6  # the quoted line break still counts as a line


def test_a_cleaned_name_imported_again_is_unchanged(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    import_audience(sessions, jsonl_file(tmp_path, {"id": "u1", **OK, "name": HOSTILE_NAMES[0][0]}), now=NOW)
    once = stored(sessions)["u1"].name
    report, _ = run_import(sessions, jsonl_file(tmp_path, {"id": "u1", **OK, "name": once}, name="again.jsonl"))
    assert (stored(sessions)["u1"].name, report.cleaned_names) == (once, 0)


def test_a_lone_surrogate_in_a_name_is_removed_but_elsewhere_rejects_the_line(sessions: sessionmaker[Session],
                                                                               tmp_path: Path) -> None:
    path = jsonl_file(tmp_path, {"id": "before", **OK}, '{"id": "bad", "email": "x@example.com", "plan": "\\ud800"}',
                      '{"id": "after", "email": "y@example.com", "timezone": "UTC", "name": "Ana\\udfff"}')
    report, rejected = run_import(sessions, path)
    assert rejected == [f"{path}:2: not valid JSON text (an unpaired surrogate escape such as \\ud800 is not a "
                        "character)"]
    assert (report.accepted, report.cleaned_names, stored(sessions)["after"].name) == (2, 1, "Ana")


# --- 2. email addresses ---------------------------------------------------------------------------------


def test_non_ascii_local_part_is_rejected_and_non_ascii_domain_stored_as_idna(sessions: sessionmaker[Session],
                                                                              tmp_path: Path) -> None:
    path = csv_file(tmp_path, "u1,Ana@Example.COM,,,UTC,,", "u2,josé@example.com,,,UTC,,",
                    "u3,Bob@Bücher.DE,,,UTC,,", "u4,zoë@bücher.de,,,UTC,,")
    report, rejected = run_import(sessions, path)
    reason = "email: a non-ASCII local part needs SMTPUTF8, which our providers do not take"
    assert rejected == [f"{path}:3: id u2: {reason}", f"{path}:5: id u4: {reason}"]
    assert (report.accepted, report.rejected) == (2, 2)
    assert {k: r.email for k, r in stored(sessions).items()} == {"u1": "Ana@example.com", "u3": "Bob@xn--bcher-kva.de"}


# --- 3. time zones are tzdata's IANA names, nothing else --------------------------------------------------

BAD_ZONES = [
    ("localtime", "'localtime' is not an IANA time zone (it names the host's own zone; for example Asia/Jakarta)"),
    ("posixrules", "'posixrules' is not an IANA time zone (it names a rules template of the host; for example "
                   "Asia/Jakarta)"),
    ("right/Asia/Jakarta", "'right/Asia/Jakarta' is not an IANA time zone (a host copy with leap seconds; use "
                           "'Asia/Jakarta')"),
    ("posix/Asia/Jakarta", "'posix/Asia/Jakarta' is not an IANA time zone (a host copy of the POSIX tree; use "
                           "'Asia/Jakarta')"),
    ("Factory", "'Factory' is not an IANA time zone of a place (tzdata's placeholder for an unconfigured host; "
                "for example Asia/Jakarta)"),
    ("/usr/share/zoneinfo/Asia/Jakarta", "'/usr/share/zoneinfo/Asia/Jakarta' is not an IANA time zone (a file path, "
                                         "not a zone name; for example Asia/Jakarta)"),
    ("../../../etc/localtime", "'../../../etc/localtime' is not an IANA time zone (a file path, not a zone name; "
                               "for example Asia/Jakarta)"),
    ("Asia/../Asia/Jakarta", "'Asia/../Asia/Jakarta' is not an IANA time zone (a file path, not a zone name; "
                             "for example Asia/Jakarta)"),
    ("asia/jakarta", "'asia/jakarta' is not an IANA time zone (names are case-sensitive: 'Asia/Jakarta')"),
    ("Asia", "'Asia' is not an IANA time zone (for example Asia/Jakarta)"),
]


@pytest.mark.parametrize(("name", "reason"), BAD_ZONES, ids=[name for name, _ in BAD_ZONES])
def test_host_files_paths_and_factory_are_not_time_zones(sessions: sessionmaker[Session], tmp_path: Path,
                                                         name: str, reason: str) -> None:
    path = jsonl_file(tmp_path, *around({"timezone": name}))
    assert_only_rejected(sessions, path, 2, f"id bad: timezone: {reason}")
    assert zones.reason(name) == reason and not zones.is_iana_zone(name)
    with pytest.raises(ValueError) as raised:
        campaign_zone(name)
    assert str(raised.value) == reason


def test_accepted_zones_are_exactly_tzdatas_list_without_factory() -> None:
    listed = set((files("tzdata") / "zones").read_text(encoding="utf-8").split())
    assert {name for name in listed if zones.is_iana_zone(name)} == listed - {"Factory"}
    assert {"Asia/Jakarta", "America/Sao_Paulo", "UTC", "Etc/GMT-7", "Asia/Calcutta"} <= listed


def test_zones_are_read_from_tzdata_whatever_the_host_has(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """A host folder with extra files ("localtime", a made-up zone) and none of the real ones changes nothing."""
    import zoneinfo

    host = tmp_path / "zoneinfo"
    (host / "Mars").mkdir(parents=True)
    tzif = (files("tzdata") / "zoneinfo" / "Asia" / "Jakarta").read_bytes()
    for fake in ("localtime", "Mars/Olympus_Mons"):
        (host / fake).write_bytes(tzif)
    zoneinfo.reset_tzpath(to=[str(host)])
    try:
        path = jsonl_file(tmp_path, {"id": "before", **OK, "timezone": "America/Ciudad_Juarez"},
                          {"id": "bad", **OK, "timezone": "Mars/Olympus_Mons"}, {"id": "after", **OK})
        reason = "id bad: timezone: 'Mars/Olympus_Mons' is not an IANA time zone (for example Asia/Jakarta)"
        assert_only_rejected(sessions, path, 2, reason)
        assert zones.zone("America/Ciudad_Juarez").key == "America/Ciudad_Juarez"
    finally:
        zoneinfo.reset_tzpath()


def test_zone_is_cached_and_shared_with_campaign() -> None:
    assert zones.zone("Asia/Jakarta") is zones.zone("Asia/Jakarta") is campaign_zone("Asia/Jakarta")
    assert str(zones.zone("Asia/Jakarta")) == "Asia/Jakarta"


# --- 4. numbers and sizes -------------------------------------------------------------------------------


def test_integer_of_5000_digits_rejects_its_line_only(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    big = '{"id": "bad", "email": "x@example.com", "timezone": "UTC", "seats": ' + "9" * 5000 + "}"
    path = jsonl_file(tmp_path, {"id": "before", **OK}, big, {"id": "after", **OK})
    assert_only_rejected(sessions, path, 2, "not valid JSON (a number with more than 4,300 digits)")


def test_csv_cell_over_the_csv_module_limit_rejects_its_row_only(sessions: sessionmaker[Session],
                                                                 tmp_path: Path) -> None:
    path = csv_file(tmp_path, "before,a@example.com,,,UTC,,,gold", "bad,b@example.com,,,UTC,,," + "x" * 140_000,
                    "after,c@example.com,,,UTC,,,gold", header=HEADER + ",attributes.plan")
    assert_only_rejected(sessions, path, 3, "id bad: attributes.plan: the cell is longer than 65,536 characters")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_ten_megabyte_line_rejects_its_row_only(sessions: sessionmaker[Session], tmp_path: Path, fmt: str) -> None:
    if fmt == "csv":
        path = csv_file(tmp_path, "before,a@example.com,,,UTC,,", "bad,b@example.com," + "n" * 10_000_000 + ",,UTC,,",
                        "after,c@example.com,,,UTC,,")
        line = 3
    else:
        path = jsonl_file(tmp_path, {"id": "before", **OK}, {"id": "bad", **OK, "name": "n" * 10_000_000},
                          {"id": "after", **OK})
        line = 2
    report, rejected = run_import(sessions, path)
    assert rejected == [f"{path}:{line}: the row is longer than 1,048,576 characters"]
    assert (report.accepted, set(stored(sessions))) == (2, {"before", "after"})


def test_more_than_20_push_tokens_rejects_the_row_and_20_are_stored(sessions: sessionmaker[Session],
                                                                    tmp_path: Path) -> None:
    path = jsonl_file(tmp_path, {"id": "before", **OK, "push_tokens": [f"t{i}" for i in range(20)]},
                      {"id": "bad", **OK, "push_tokens": [f"t{i}" for i in range(1000)]}, {"id": "after", **OK})
    assert_only_rejected(sessions, path, 2, "id bad: push_tokens: 1,000 push tokens; at most 20 per recipient")
    assert len(tokens_of(sessions, "before")) == 20
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(PushToken)) == 20


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 2):
        value = {"x": value}
    return {"deep": value}  # ``levels`` objects, counting the attributes object


@pytest.mark.parametrize(("attributes", "reason"), [
    ({"blob": "x" * 16_400}, "attributes: 16,411 bytes as JSON; at most 16,384"),
    ({"blob": "é" * 8_200}, "attributes: 16,411 bytes as JSON; at most 16,384"),
    (nested(5), "attributes: nested deeper than 4 levels"),
    ({"list": [[[[1]]]]}, "attributes: nested deeper than 4 levels"),
    # PostgreSQL's JSON operators refuse a document with a NUL: one such row would break every condition
    ({"plan": "a\x00b"}, "attributes: a name or a text contains a NUL character"),
    ({"pl\x00an": "a"}, "attributes: a name or a text contains a NUL character"),
    ({"tags": [{"x": ["\x00"]}]}, "attributes: a name or a text contains a NUL character"),
])
def test_oversized_or_deep_attributes_reject_the_row(sessions: sessionmaker[Session], tmp_path: Path,
                                                     attributes: dict[str, Any], reason: str) -> None:
    path = jsonl_file(tmp_path, {"id": "before", **OK, "attributes": nested(4)},
                      {"id": "bad", **OK, "attributes": attributes},
                      {"id": "after", **OK, "attributes": {"blob": "x" * 16_000}})
    assert_only_rejected(sessions, path, 2, f"id bad: {reason}")
    assert stored(sessions)["before"].attributes == nested(4)


BAD_REFUNDS = [
    ({"refund_amount": "-5", "refund_currency": "USD"}, "refund_amount: a refund cannot be negative"),
    ({"refund_amount": "NaN", "refund_currency": "USD"}, "refund_amount: not a decimal amount such as 12.50"),
    ({"refund_amount": "Infinity", "refund_currency": "USD"}, "refund_amount: not a decimal amount such as 12.50"),
    ({"refund_amount": "12,50", "refund_currency": "USD"}, "refund_amount: not a decimal amount such as 12.50"),
    ({"refund_amount": "1e999", "refund_currency": "IDR"}, "refund_amount: more than 1,000,000,000,000"),
    ({"refund_amount": 10 ** 13, "refund_currency": "IDR"}, "refund_amount: more than 1,000,000,000,000"),
    ({"refund_amount": 10 ** 40, "refund_currency": "IDR"},
     "refund_amount: longer than 40 characters: not a decimal amount such as 12.50"),
    ({"refund_amount": "12.34567", "refund_currency": "USD"}, "refund_amount: more than 4 decimal places"),
    ({"refund_amount": True, "refund_currency": "USD"},
     "refund_amount: expected a decimal amount such as 12.50, got true/false"),
    ({"refund_amount": "12.50"}, "refund_currency: missing, but refund_amount is given"),
    ({"refund_currency": "USD"}, "refund_amount: missing, but refund_currency is given"),
    ({"refund_amount": "12.50", "refund_currency": "ZZZ"},
     "refund_currency: 'ZZZ' is not an ISO 4217 currency code Babel knows"),
    ({"refund_amount": "12.50", "refund_currency": "XXX"},
     "refund_currency: 'XXX' is not an ISO 4217 currency code Babel knows"),
    ({"refund_amount": "12.50", "refund_currency": "US$"},
     "refund_currency: not a three-letter ISO 4217 currency code such as IDR"),
]


@pytest.mark.parametrize(("refund", "reason"), BAD_REFUNDS, ids=[r for _, r in BAD_REFUNDS])
def test_a_bad_refund_rejects_the_row_naming_the_field(sessions: sessionmaker[Session], tmp_path: Path,
                                                       refund: dict[str, Any], reason: str) -> None:
    path = jsonl_file(tmp_path, {"id": "before", **OK, "refund_amount": "49000", "refund_currency": "IDR"},
                      {"id": "bad", **OK, "attributes": refund}, {"id": "after", **OK, "attributes": {
                          "refund_amount": 21.9, "refund_currency": " brl "}})
    assert_only_rejected(sessions, path, 2, f"id bad: {reason}")
    rows = stored(sessions)
    assert rows["before"].attributes == {"refund_amount": "49000", "refund_currency": "IDR"}
    assert rows["after"].attributes == {"refund_amount": 21.9, "refund_currency": "BRL"}


def test_a_bad_refund_in_a_csv_column_rejects_the_row(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = csv_file(tmp_path, "before,a@example.com,,,UTC,,,27.04,BRL", "bad,b@example.com,,,UTC,,,1e400,USD",
                    "after,c@example.com,,,UTC,,,,", header=HEADER + ",refund_amount,refund_currency")
    assert_only_rejected(sessions, path, 3, "id bad: refund_amount: more than 1,000,000,000,000")


# --- 5. a file that cannot be read on, or a database that fails, says what is stored ----------------------


def latin1_at(path: Path, rows: int, bad_line: int) -> Path:
    """A UTF-8 audience whose physical line ``bad_line`` has a latin-1 é."""
    with path.open("wb") as f:
        f.write((HEADER + "\n").encode())
        for line in range(2, rows + 2):
            name = "Jos\xe9".encode("latin-1") if line == bad_line else "José".encode()
            f.write(f"r{line},r{line}@example.com,".encode() + name + b",,UTC,,\n")
    return path


def test_latin1_byte_stops_the_import_on_its_exact_line_after_storing_every_row_before_it(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = latin1_at(tmp_path / "audience.csv", 2000, 1453)
    with pytest.raises(AudienceError) as raised:
        import_audience(sessions, path, now=NOW)
    assert str(raised.value) == (
        f"{path}:1453: not UTF-8 text (byte 0xE9 at column 28); save the file as UTF-8; the import stopped there: "
        "1,451 rows stored (every accepted row through line 1452), 0 rejected")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Recipient)) == 1451
        assert s.scalar(select(func.max(Recipient.import_line))) == 1452


def test_cli_prints_how_many_rows_were_stored_when_a_file_cannot_be_read_on(tmp_path: Path) -> None:
    import os

    path = latin1_at(tmp_path / "audience.csv", 30, 20)
    env = {**os.environ, "NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    result = subprocess.run([sys.executable, "-m", "notifier", "audience", "import", str(path)], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=300)
    assert (result.returncode, "Traceback" in result.stderr) == (2, False)
    assert result.stderr.strip().endswith(f"{path}:20: not UTF-8 text (byte 0xE9 at column 24); save the file as "
                                          "UTF-8; the import stopped there: 18 rows stored (every accepted row "
                                          "through line 19), 0 rejected")


def test_database_failure_mid_import_says_which_batches_are_stored(sessions: sessionmaker[Session], engine: Engine,
                                                                   tmp_path: Path) -> None:
    path = csv_file(tmp_path, *(f"u{i},u{i}@example.com,,,UTC,," for i in range(1, 8)), "u8,broken,,,UTC,,")
    with (third_batch_fails(engine, sqlite3.OperationalError("disk I/O error")),
          pytest.raises(OperationalError) as raised):
        import_audience(sessions, path, now=NOW, batch_size=3)
    assert raised.value.__notes__ == [
        "6 rows stored (every accepted row through line 7), 1 rejected; 1 row accepted on line 8 not stored"]
    assert set(stored(sessions)) == {f"u{i}" for i in range(1, 7)}


def test_attributes_with_odd_characters_and_big_numbers_are_stored_as_json(sessions: sessionmaker[Session],
                                                                          tmp_path: Path) -> None:
    # (a NUL is refused: PostgreSQL's JSON operators, which conditions use, fail on a document holding one)
    attributes = {"note": "a\u2028b\x01\u202e", "big": 10 ** 30, "tiny": 1e-300, "nested": {"k": ["v", None, True]}}
    report, rejected = run_import(sessions, jsonl_file(tmp_path, {"id": "u1", **OK, "attributes": attributes}))
    assert (rejected, report.accepted) == ([], 1)
    assert stored(sessions)["u1"].attributes == json.loads(json.dumps(attributes))


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.emails(),
    st.builds(lambda local, domain: f"{local}@{domain}",
              st.text(st.sampled_from("aZ09.+-_'~!#"), min_size=0, max_size=70),
              st.sampled_from(["Example.COM", "exämple.de", "x", "-x.com", "a.b", "[1.2.3.4]", "localhost",
                               "xn--bcher-kva.example", "example.com.", "a" * 250 + ".com", "bücher.例え.jp"])),
))
def test_fast_email_path_stores_what_email_validator_would(address: str) -> None:
    """The per-domain cache is an optimization only: every address is stored, or refused, as the validator says."""
    from email_validator import EmailNotValidError, validate_email

    from notifier.audience._rows import RowError, _email

    try:
        valid = validate_email(address, check_deliverability=False, allow_smtputf8=False)
        expected: str | None = valid.ascii_email or valid.normalized
        if len(expected) > 320:
            expected = None
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = _email({"email": address})
    except RowError:
        got = None
    assert got == expected
