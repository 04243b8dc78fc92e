"""The team (issue 28), on SQLite and on PostgreSQL: the audit log is numbered, chained and append-only, and a line
removed or changed behind the triggers' back shows; people log in, are invited once, and lose their sessions when
their role changes; personal tokens speak for their person until revoked or disabled; four eyes: the author of a
version never approves it, and only an approved version of a service announcement is scheduled."""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from notifier.cli import cli
from notifier.config import Settings
from notifier.errors import CampaignStateError, NotFound, RequestRefused, UserError
from notifier.ledger import audit
from notifier.ledger.db import transaction
from notifier.ledger.models import AuditHead, AuditLine
from notifier.render import Content
from notifier.studio import service
from notifier.studio.starter import STARTERS
from notifier.team import approvals, people, tokens
from notifier.team.people import INVITE_LIFETIME, Member
from notifier.web.dashboard.auth import hash_password
from notifier.web.requests import Web
from tests.conftest import SHIPPED_ID, SharedLedger
from tests.test_dashboard_access import dashboard_settings
from tests.test_studio_service import translated

NOW = datetime(2027, 1, 20, 12, 0, tzinfo=UTC)  # before the price-change starter's first wave
ID = "price-change"
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fast_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords hashed at a low scrypt cost: the rules under test are the team's, not scrypt's."""
    monkeypatch.setattr(people, "hash_password", functools.partial(hash_password, cost=(2**10, 8, 1)))


def lines_of(sessions: sessionmaker[Session]) -> list[AuditLine]:
    with sessions() as s:
        return list(s.scalars(select(AuditLine).order_by(AuditLine.seq)))


def actions_of(sessions: sessionmaker[Session]) -> list[str]:
    return [line.action for line in lines_of(sessions)]


def check(sessions: sessionmaker[Session]) -> audit.Check:
    with sessions() as s:
        return audit.verify(s)


def record_many(sessions: sessionmaker[Session], n: int) -> None:
    with transaction(sessions) as s:
        for i in range(n):
            audit.record(s, "schedule", campaign_id=f"c{i}", detail={"n": i}, at=NOW + timedelta(seconds=i))


@contextmanager
def around_the_triggers(engine: Engine) -> Iterator[Any]:
    """A connection on which the audit log's triggers do not fire: what someone with the database's owner rights
    could do. The triggers are back when it ends."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
            yield conn
            conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
        else:
            triggers = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                         "AND tbl_name = 'audit_log'")).all()
            assert {name for name, _ in triggers} == {"audit_log_no_update", "audit_log_no_delete"}
            for name, _ in triggers:
                conn.execute(text(f"DROP TRIGGER {name}"))
            yield conn
            for _, sql in triggers:
                conn.execute(text(sql))


# --- the audit log ------------------------------------------------------------------------------------------------


def test_record_numbers_the_lines_from_one_and_chains_each_to_the_line_before(
        sessions: sessionmaker[Session]) -> None:
    record_many(sessions, 5)

    lines = lines_of(sessions)
    assert [line.seq for line in lines] == [1, 2, 3, 4, 5]
    assert lines[0].prev == audit.GENESIS
    assert [line.prev for line in lines[1:]] == [line.hash for line in lines[:-1]]
    assert len({line.hash for line in lines}) == 5
    with sessions() as s:
        head = s.get(AuditHead, 1)
        assert head is not None and (head.seq, head.hash) == (5, lines[-1].hash)
    assert [line.actor for line in lines] == ["system"] * 5  # nobody set: the system acts


def test_a_line_names_who_acted_and_an_unknown_action_is_refused(sessions: sessionmaker[Session]) -> None:
    ana = audit.Actor("person:7", "ana@example.com", "192.0.2.1", 7)
    with transaction(sessions) as s, audit.acting(ana):
        audit.record(s, "pause", campaign_id="c", at=NOW)
    with transaction(sessions) as s, pytest.raises(ValueError, match="unknown audit action 'delete'"):
        audit.record(s, "delete", at=NOW)

    with sessions() as s:
        (entry,) = audit.entries(s)
    assert (entry.seq, entry.actor, entry.actor_name, entry.address, entry.action, entry.campaign_id) == (
        1, "person:7", "ana@example.com", "192.0.2.1", "pause", "c")
    assert audit.current() == audit.SYSTEM  # acting() ends with its block


def test_verify_finds_a_long_log_intact(sessions: sessionmaker[Session]) -> None:
    record_many(sessions, 150)
    for i in range(50):  # and one line a transaction
        with transaction(sessions) as s:
            audit.record(s, "retry", campaign_id="c", detail={"i": i}, at=NOW)

    assert check(sessions) == audit.Check(200)
    assert check(sessions).intact


def test_an_empty_log_is_intact(sessions: sessionmaker[Session]) -> None:
    assert check(sessions) == audit.Check(0)


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["audit_log", "audit_head"])
def test_postgresql_refuses_to_truncate_the_audit_log_or_its_head(
        postgres_ledger: SharedLedger, table: str) -> None:
    sessions = postgres_ledger.sessions
    record_many(sessions, 3)

    with pytest.raises(DBAPIError, match="the audit log is append-only"), postgres_ledger.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {table}"))

    assert check(sessions).lines == 3


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET detail = '{}' WHERE seq = 2",
                                       "DELETE FROM audit_log WHERE seq = 2",
                                       "DELETE FROM audit_log"])
def test_the_database_refuses_to_update_or_delete_an_audit_line(
        engine: Engine, sessions: sessionmaker[Session], statement: str) -> None:
    record_many(sessions, 3)

    with pytest.raises(DBAPIError, match="the audit log is append-only"), engine.begin() as conn:
        conn.execute(text(statement))

    assert [line.detail for line in lines_of(sessions)] == ['{"n":0}', '{"n":1}', '{"n":2}']
    assert check(sessions) == audit.Check(3)


def test_a_middle_line_removed_behind_the_triggers_is_named_by_verify(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    record_many(sessions, 5)

    with around_the_triggers(engine) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))

    assert check(sessions) == audit.Check(2, "line 3 is missing (the next line is 4)")


def test_a_removed_line_renumbered_to_close_the_gap_is_found_by_its_chain(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    record_many(sessions, 5)

    with around_the_triggers(engine) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
        conn.execute(text("UPDATE audit_log SET seq = seq - 1 WHERE seq = 4"))
        conn.execute(text("UPDATE audit_log SET seq = seq - 1 WHERE seq = 5"))

    found = check(sessions)
    assert not found.intact and found.lines == 2
    assert found.problem and found.problem.startswith("line 3 does not follow line 2")


def test_the_last_line_removed_while_the_head_stays_is_found(engine: Engine, sessions: sessionmaker[Session]) -> None:
    record_many(sessions, 5)

    with around_the_triggers(engine) as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 5"))

    assert check(sessions) == audit.Check(
        4, "the log ends at line 4, but line 5 was written: the last lines were removed")


def test_a_line_whose_detail_was_changed_is_named_by_verify(engine: Engine, sessions: sessionmaker[Session]) -> None:
    record_many(sessions, 5)

    with around_the_triggers(engine) as conn:
        conn.execute(text("UPDATE audit_log SET detail = :detail WHERE seq = 2"), {"detail": '{"n":99}'})

    assert check(sessions) == audit.Check(1, "line 2 was changed after it was written")


def test_the_triggers_are_back_after_going_around_them(engine: Engine, sessions: sessionmaker[Session]) -> None:
    record_many(sessions, 2)
    with around_the_triggers(engine):
        pass

    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 1"))


@pytest.mark.postgres
def test_two_threads_recording_at_once_make_one_gap_free_intact_chain(postgres_ledger: SharedLedger) -> None:
    sessions = postgres_ledger.sessions  # on PostgreSQL: SQLite writes one transaction at a time anyway
    each, start = 30, threading.Barrier(2)
    failures: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with transaction(sessions) as s:
                    audit.record(s, "retry", campaign_id=f"t{thread}", detail={"thread": thread, "i": i})
                    s.execute(text("SELECT pg_sleep(0.001)"))  # hold the head a moment: the other thread waits
        except BaseException as exc:  # reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert failures == []
    lines = lines_of(sessions)
    assert [line.seq for line in lines] == list(range(1, 2 * each + 1))
    assert Counter(line.detail for line in lines) == Counter(
        f'{{"i":{i},"thread":{t}}}' for t in (1, 2) for i in range(each))
    assert len({line.campaign_id for line in lines[:each]}) == 2  # the threads did interleave
    assert check(sessions) == audit.Check(2 * each)


# --- people -------------------------------------------------------------------------------------------------------


def admin(sessions: sessionmaker[Session], email: str = "ada@example.com") -> Member:
    with transaction(sessions) as s:
        return people.add_admin(s, email, "Ada", PASSWORD, NOW)


def member_with(sessions: sessionmaker[Session], email: str, role: str) -> Member:
    """Someone invited with ``role`` who accepted."""
    with transaction(sessions) as s:
        _, token = people.invite(s, email, email.split("@")[0].title(), role, NOW)
    with transaction(sessions) as s:
        return people.accept(s, token, PASSWORD, NOW)


def test_an_admin_logs_in_with_their_password_only_and_not_once_disabled(sessions: sessionmaker[Session]) -> None:
    ada = admin(sessions)
    other = admin(sessions, "grace@example.com")

    with sessions() as s:
        assert people.authenticate(s, "ADA@example.com ", PASSWORD) == ada
        assert people.authenticate(s, "ada@example.com", PASSWORD + "!") is None
        assert people.authenticate(s, "nobody@example.com", PASSWORD) is None
        assert people.authenticate(s, "not an email", PASSWORD) is None
    with transaction(sessions) as s:
        people.set_enabled(s, ada.id, False, NOW, by=other.id)
    with sessions() as s:
        assert people.authenticate(s, "ada@example.com", PASSWORD) is None
        assert people.has_team(s)


def test_an_admin_added_twice_is_refused(sessions: sessionmaker[Session]) -> None:
    admin(sessions)

    with pytest.raises(RequestRefused, match="already in the team") as refused, transaction(sessions) as s:
        people.add_admin(s, "Ada@Example.com", "Ada again", PASSWORD, NOW)
    assert refused.value.status == 409


def test_an_invitation_is_accepted_once_and_then_is_not_found(sessions: sessionmaker[Session]) -> None:
    admin(sessions)
    with transaction(sessions) as s:
        invited, token = people.invite(s, "bo@example.com", "Bo", "editor", NOW)
    assert (invited.state, invited.role) == ("invited", "editor")

    with sessions() as s:
        assert people.invitation(s, token, NOW + timedelta(days=1)).id == invited.id
        assert people.authenticate(s, "bo@example.com", PASSWORD) is None  # no password yet
    with transaction(sessions) as s:
        bo = people.accept(s, token, PASSWORD, NOW + timedelta(days=1), name="Bo Bo")
    assert (bo.id, bo.state, bo.name, bo.epoch) == (invited.id, "active", "Bo Bo", 1)

    with pytest.raises(NotFound), transaction(sessions) as s:
        people.accept(s, token, "another password 123", NOW + timedelta(days=1))
    with sessions() as s:
        with pytest.raises(NotFound):
            people.invitation(s, token, NOW + timedelta(days=1))
        assert people.authenticate(s, "bo@example.com", PASSWORD) == bo
        assert people.authenticate(s, "bo@example.com", "another password 123") is None


def test_a_new_password_needs_the_current_one_and_ends_the_other_sessions(sessions: sessionmaker[Session]) -> None:
    bo = member_with(sessions, "bo@example.com", "editor")

    with pytest.raises(UserError, match="current password"), transaction(sessions) as s:
        people.change_password(s, bo.id, "not my password at all", "a brand new password", NOW)
    with pytest.raises(UserError, match="at least 12"), transaction(sessions) as s:
        people.change_password(s, bo.id, PASSWORD, "short", NOW)
    with transaction(sessions) as s:
        changed = people.change_password(s, bo.id, PASSWORD, "a brand new password", NOW)
    with sessions() as s:
        assert people.active(s, bo.id, bo.epoch) is None and people.active(s, bo.id, changed.epoch) == changed
        assert people.authenticate(s, "bo@example.com", "a brand new password") == changed
        assert people.authenticate(s, "bo@example.com", PASSWORD) is None
    assert actions_of(sessions)[-1] == "password"


def test_a_reset_invites_the_person_again_and_revokes_their_tokens(
        sessions: sessionmaker[Session]) -> None:
    bo = member_with(sessions, "bo@example.com", "editor")
    with transaction(sessions) as s:
        _info, secret = tokens.issue(s, bo.id, "laptop", NOW)
        reset, token = people.reset(s, bo.id, NOW)
    assert reset.state == "invited"
    with transaction(sessions) as s:
        assert tokens.person_of(s, secret, NOW) is None
        assert people.authenticate(s, "bo@example.com", PASSWORD) is None
    with transaction(sessions) as s:
        people.accept(s, token, "a password after the reset", NOW)
    with transaction(sessions) as s:
        assert tokens.person_of(s, secret, NOW) is None  # whoever knew the old password may have made it
        assert people.authenticate(s, "bo@example.com", "a password after the reset") is not None
    assert actions_of(sessions)[-2:] == ["reset", "accept"]


def test_a_token_stops_working_when_it_expires(sessions: sessionmaker[Session]) -> None:
    bo = member_with(sessions, "bo@example.com", "editor")
    with transaction(sessions) as s:
        info, secret = tokens.issue(s, bo.id, "a month", NOW, days=30)
    assert info.expires_at == NOW + timedelta(days=30)
    with transaction(sessions) as s:
        assert tokens.person_of(s, secret, NOW + timedelta(days=29, hours=23)) is not None
        assert tokens.person_of(s, secret, NOW + timedelta(days=30)) is None
    with pytest.raises(UserError, match="1 to 365 days"), transaction(sessions) as s:
        tokens.issue(s, bo.id, "forever", NOW, days=10_000)


def test_an_invitation_accepted_twice_at_the_same_moment_is_accepted_once(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        _, token = people.invite(s, "bo@example.com", "Bo", "editor", NOW)

    with sessions() as late, late.begin():
        people.invitation(late, token, NOW)  # the second request has read the link
        with transaction(sessions) as first:
            bo = people.accept(first, token, PASSWORD, NOW)
        with pytest.raises(NotFound):
            people.accept(late, token, "another password 123", NOW)

    with sessions() as s:
        assert people.authenticate(s, "bo@example.com", PASSWORD) == bo
    assert actions_of(sessions) == ["invite", "accept"]


def test_an_expired_or_replaced_invitation_is_refused(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        _, first = people.invite(s, "bo@example.com", "Bo", "viewer", NOW)
    expired = NOW + INVITE_LIFETIME

    with sessions() as s:
        with pytest.raises(NotFound):
            people.invitation(s, first, expired)
        assert people.invitation(s, first, expired - timedelta(seconds=1)).email == "bo@example.com"
    with pytest.raises(NotFound), transaction(sessions) as s:
        people.accept(s, first, PASSWORD, expired)

    with transaction(sessions) as s:  # invited again: a new link, the old one stops working
        again, second = people.invite(s, "bo@example.com", "Bo", "editor", NOW)
    with sessions() as s:
        with pytest.raises(NotFound):
            people.invitation(s, first, NOW)
        assert people.invitation(s, second, NOW).role == "editor"
    assert [m.id for m in _listing(sessions)] == [again.id]


def _listing(sessions: sessionmaker[Session]) -> list[Member]:
    with sessions() as s:
        return people.listing(s)


def test_a_new_role_ends_the_persons_sessions(sessions: sessionmaker[Session]) -> None:
    ada = admin(sessions)
    bo = member_with(sessions, "bo@example.com", "editor")
    with sessions() as s:
        assert people.active(s, bo.id, bo.epoch) == bo

    with transaction(sessions) as s:
        promoted = people.set_role(s, bo.id, "approver", NOW, by=ada.id)

    assert (promoted.role, promoted.epoch) == ("approver", bo.epoch + 1)
    with sessions() as s:
        assert people.active(s, bo.id, bo.epoch) is None
        assert people.active(s, bo.id, promoted.epoch) == promoted


def test_disabling_ends_the_persons_sessions_and_enabling_needs_a_new_login(sessions: sessionmaker[Session]) -> None:
    ada = admin(sessions)
    bo = member_with(sessions, "bo@example.com", "viewer")

    with transaction(sessions) as s:
        off = people.set_enabled(s, bo.id, False, NOW, by=ada.id)
    with transaction(sessions) as s:
        on = people.set_enabled(s, bo.id, True, NOW, by=ada.id)

    assert (off.state, on.state) == ("disabled", "active")
    with sessions() as s:
        assert people.active(s, bo.id, bo.epoch) is None
        assert people.active(s, bo.id, off.epoch) is None
        assert people.active(s, bo.id, on.epoch) == on


def test_an_admin_cannot_demote_or_disable_themselves(sessions: sessionmaker[Session]) -> None:
    ada = admin(sessions)

    for change in (lambda s: people.set_role(s, ada.id, "approver", NOW, by=ada.id),
                   lambda s: people.set_enabled(s, ada.id, False, NOW, by=ada.id)):
        with pytest.raises(RequestRefused) as refused, transaction(sessions) as s:
            change(s)
        assert refused.value.status == 409

    with sessions() as s:
        assert people.active(s, ada.id, ada.epoch) == ada
    assert actions_of(sessions) == ["person_add"]


def test_each_change_to_the_team_is_exactly_one_audit_line_with_its_action(sessions: sessionmaker[Session]) -> None:
    ada = admin(sessions)
    with transaction(sessions) as s:
        bo, token = people.invite(s, "bo@example.com", "Bo", "editor", NOW)
    with transaction(sessions) as s:
        people.accept(s, token, PASSWORD, NOW)
    with transaction(sessions) as s, audit.acting(audit.Actor(ada.actor_id, ada.email, "-", ada.id)):
        people.set_role(s, bo.id, "approver", NOW, by=ada.id)
        people.set_role(s, bo.id, "approver", NOW, by=ada.id)  # no change: no line
        people.set_enabled(s, bo.id, False, NOW, by=ada.id)
        people.set_enabled(s, bo.id, False, NOW, by=ada.id)
        people.set_enabled(s, bo.id, True, NOW, by=ada.id)

    lines = lines_of(sessions)
    assert [line.action for line in lines] == ["person_add", "invite", "accept", "role", "disable", "enable"]
    assert [line.actor for line in lines] == ["system", "system", bo.actor_id, *[ada.actor_id] * 3]
    with sessions() as s:
        details = {e.action: e.detail for e in audit.entries(s)}
    assert details["role"] == {"person": bo.id, "email": "bo@example.com", "from": "editor", "to": "approver"}
    assert PASSWORD not in "".join(line.detail for line in lines)
    assert check(sessions) == audit.Check(6)


def test_a_change_refused_or_rolled_back_leaves_no_audit_line(sessions: sessionmaker[Session]) -> None:
    admin(sessions)

    with pytest.raises(RuntimeError), transaction(sessions) as s:
        people.invite(s, "bo@example.com", "Bo", "editor", NOW)
        raise RuntimeError("the request failed after the invitation")

    assert actions_of(sessions) == ["person_add"]
    assert [m.email for m in _listing(sessions)] == ["ada@example.com"]
    assert check(sessions) == audit.Check(1)


# --- personal API tokens ------------------------------------------------------------------------------------------


def test_a_token_speaks_for_its_person_until_revoked(sessions: sessionmaker[Session]) -> None:
    ada = admin(sessions)
    with transaction(sessions) as s:
        info, token = tokens.issue(s, ada.id, "  CI   deploy ", NOW)

    assert token.startswith(f"ntf_{info.id}_") and info.name == "CI deploy"
    with transaction(sessions) as s:
        assert tokens.person_of(s, token, NOW) == ada
    with transaction(sessions) as s:
        tokens.revoke(s, info.id, NOW, person_id=ada.id)
    with transaction(sessions) as s:
        assert tokens.person_of(s, token, NOW) is None
        (listed,) = tokens.mine(s, ada.id)
    assert (listed.id, listed.revoked_at, listed.last_used_at) == (info.id, NOW, NOW)
    assert actions_of(sessions) == ["person_add", "token_create", "token_revoke"]
    secret = token.removeprefix(f"ntf_{info.id}_")  # 43 characters, which may hold "_" themselves
    assert len(secret) == 43 and secret not in "".join(line.detail for line in lines_of(sessions))


def test_a_disabled_persons_token_speaks_for_nobody(sessions: sessionmaker[Session]) -> None:
    ada = admin(sessions)
    bo = member_with(sessions, "bo@example.com", "editor")
    with transaction(sessions) as s:
        _, token = tokens.issue(s, bo.id, "script", NOW)

    with transaction(sessions) as s:
        people.set_enabled(s, bo.id, False, NOW, by=ada.id)
    with transaction(sessions) as s:
        assert tokens.person_of(s, token, NOW) is None
    with transaction(sessions) as s:
        people.set_enabled(s, bo.id, True, NOW, by=ada.id)
    with transaction(sessions) as s:
        found = tokens.person_of(s, token, NOW)
    assert found is not None and found.id == bo.id


def test_a_token_with_a_wrong_secret_or_shape_speaks_for_nobody(sessions: sessionmaker[Session]) -> None:
    ada = admin(sessions)
    with transaction(sessions) as s:
        info, token = tokens.issue(s, ada.id, "script", NOW)
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")

    with transaction(sessions) as s:
        for guess in (wrong, f"ntf_{info.id}_", token + "x", token.replace("ntf_", "xyz_"), "", "ntf_"):
            assert tokens.person_of(s, guess, NOW) is None, guess
        assert tokens.person_of(s, token, NOW) == ada


def test_revoking_someone_elses_token_is_not_found_unless_an_admin_does_it(sessions: sessionmaker[Session]) -> None:
    ada = admin(sessions)
    bo = member_with(sessions, "bo@example.com", "editor")
    with transaction(sessions) as s:
        info, token = tokens.issue(s, ada.id, "ada's", NOW)

    with pytest.raises(NotFound), transaction(sessions) as s:
        tokens.revoke(s, info.id, NOW, person_id=bo.id)
    with pytest.raises(NotFound), transaction(sessions) as s:
        tokens.revoke(s, "nosuchtoken0", NOW, person_id=None)
    with transaction(sessions) as s:
        assert tokens.person_of(s, token, NOW) == ada
    with transaction(sessions) as s:
        tokens.revoke(s, info.id, NOW, person_id=None)  # an admin
    with transaction(sessions) as s:
        assert tokens.person_of(s, token, NOW) is None


# --- four eyes ----------------------------------------------------------------------------------------------------


@pytest.fixture
def web(tmp_path: Path, sessions: sessionmaker[Session]) -> Web:
    settings = dashboard_settings(tmp_path, studio_dir=tmp_path / "studio", outbox_dir=tmp_path / "outbox")
    return Web(settings, sessions, None, lambda: NOW)


@pytest.fixture
def team(sessions: sessionmaker[Session]) -> dict[str, Member]:
    """An admin, two approvers (the author, the reviewer) and an editor."""
    return {"admin": admin(sessions), "author": member_with(sessions, "ann@example.com", "approver"),
            "reviewer": member_with(sessions, "rob@example.com", "approver"),
            "editor": member_with(sessions, "eve@example.com", "editor")}


def as_(who: Member) -> Any:
    return audit.acting(audit.Actor(who.actor_id, who.email, "-", who.id))


def approve(web: Web, who: Member, campaign_id: str = ID) -> approvals.Status:
    with transaction(web.sessions) as s:
        return approvals.approve(s, web.settings, campaign_id, who, web.now())


def status(web: Web, campaign_id: str = ID) -> approvals.Status:
    with web.sessions() as s:
        return approvals.status(s, web.settings, campaign_id)


def gate(web: Web, campaign_id: str = ID) -> None:
    """The four-eyes gate on what scheduling the campaign would store now (as ``sending.schedule`` calls it)."""
    campaign, spec = service.on_disk(web, campaign_id)
    content = Content.of(campaign, *web.settings.copy_dirs(campaign_id))
    with transaction(web.sessions) as s:
        approvals.gate(s, web.settings, campaign, spec, content.fingerprint)


def renamed(web: Web, name: str) -> None:
    """The campaign's name changed (the YAML's first ``name:``): a new version."""
    file = service.campaign_info(web, ID)["file"]
    service.save_file(web, ID, re.sub(r'(?m)^name: ".*"$', f'name: "{name}"', file, count=1))


def test_the_author_of_a_version_cannot_approve_it_and_another_approver_can(
        web: Web, team: dict[str, Member]) -> None:
    with as_(team["author"]):
        service.create_campaign(web, STARTERS[ID])
    before = status(web)
    assert (before.required, before.version, before.current, before.editors) == (True, 1, False, ("ann@example.com",))
    assert f"+++ b/campaigns/{ID}.yaml" in before.diff

    with pytest.raises(RequestRefused, match="four eyes") as refused:
        approve(web, team["author"])
    assert refused.value.status == 409
    with pytest.raises(RequestRefused) as not_an_approver:
        approve(web, team["editor"])
    assert not_an_approver.value.status == 403

    approved = approve(web, team["reviewer"])
    assert (approved.current, approved.approved_version, approved.approved_by, approved.editors, approved.diff) == (
        True, 1, "rob@example.com", (), "")
    assert status(web).current
    gate(web)  # lets the approved version through
    assert approve(web, team["reviewer"]) == status(web)  # approving again changes nothing
    assert actions_of(web.sessions)[-2:] == ["create", "approve"]


def test_an_edit_after_approval_needs_a_new_approval_before_scheduling(web: Web, team: dict[str, Member]) -> None:
    with as_(team["author"]):
        service.create_campaign(web, STARTERS[ID])
    approve(web, team["reviewer"])

    with as_(team["editor"]):
        renamed(web, "New prices")

    changed = status(web)
    assert (changed.current, changed.version, changed.approved_version, changed.editors) == (
        False, 2, 1, ("eve@example.com",))
    assert '+name: "New prices"' in changed.diff
    with pytest.raises(CampaignStateError, match="needs an approver's approval"):
        gate(web)

    approve(web, team["author"])  # the author of version 1 did not change version 2: they may approve it
    gate(web)
    with as_(team["reviewer"]):
        renamed(web, "Newer prices")
    with pytest.raises(RequestRefused, match="four eyes"):
        approve(web, team["reviewer"])
    with pytest.raises(CampaignStateError):
        gate(web)


def test_only_the_latest_approval_counts_an_older_approved_text_saved_again_needs_approving_again(
        web: Web, team: dict[str, Member]) -> None:
    with as_(team["author"]):
        service.create_campaign(web, STARTERS[ID])
        renamed(web, "First wording")
    approve(web, team["reviewer"])  # version 2
    with as_(team["author"]):
        renamed(web, "Corrected wording")
    approve(web, team["reviewer"])  # version 3 supersedes version 2
    with as_(team["editor"]):
        renamed(web, "First wording")  # version 4: the words of version 2, which was approved once

    assert not status(web).current
    with pytest.raises(CampaignStateError, match="needs an approver's approval"):
        gate(web)


def test_an_approval_names_what_the_approver_read_and_a_newer_version_is_refused(
        web: Web, team: dict[str, Member]) -> None:
    with as_(team["author"]):
        service.create_campaign(web, STARTERS[ID])
    read = status(web)
    with as_(team["editor"]):
        renamed(web, "Changed while the approver read")

    for seen in ({"version": read.version}, {"fingerprint": read.fingerprint}):
        with pytest.raises(RequestRefused, match="was saved after the one you read") as refused, \
                transaction(web.sessions) as s:
            approvals.approve(s, web.settings, ID, team["reviewer"], web.now(), **seen)
        assert refused.value.status == 409
    now = status(web)
    with transaction(web.sessions) as s:
        assert approvals.approve(s, web.settings, ID, team["reviewer"], web.now(),
                                 fingerprint=now.fingerprint).current


def test_the_studio_schedules_only_an_approved_version(web: Web, team: dict[str, Member]) -> None:
    with as_(team["author"]):
        service.create_campaign(web, STARTERS[ID])
        translated(web)
    with pytest.raises(CampaignStateError, match="four eyes"):
        service.schedule(web, ID)

    approve(web, team["reviewer"])
    service.schedule(web, ID)

    assert actions_of(web.sessions)[-2:] == ["approve", "schedule"]


def test_without_a_team_the_gate_lets_any_version_through(web: Web) -> None:
    service.create_campaign(web, STARTERS[ID])
    renamed(web, "New prices")

    found = status(web)
    assert (found.required, found.current) == (False, False)
    gate(web)


def test_a_marketing_campaign_passes_the_gate_with_the_default_settings(web: Web, team: dict[str, Member]) -> None:
    assert Settings().four_eyes == ("service",)
    with as_(team["author"]):
        service.create_campaign(web, {**STARTERS[ID], "category": "marketing"})

    assert not status(web).required
    gate(web)


def test_a_marketing_campaign_needs_approval_when_the_settings_say_so(web: Web, team: dict[str, Member]) -> None:
    strict = Web(web.settings.with_(four_eyes=("service", "marketing")), web.sessions, None, web.clock)
    with as_(team["author"]):
        service.create_campaign(strict, {**STARTERS[ID], "category": "marketing"})

    with pytest.raises(CampaignStateError, match="marketing announcement"):
        gate(strict)


def test_the_cli_refuses_to_schedule_the_shipped_campaign_once_a_team_exists_until_it_is_approved(
        sessions: sessionmaker[Session], ledger_url: str, tmp_path: Path) -> None:
    env = {"NOTIFIER_DATABASE_URL": ledger_url, "NOTIFIER_STUDIO_DIR": str(tmp_path / "studio"),
           "NOTIFIER_OUTBOX_DIR": str(tmp_path / "outbox")}
    schedule = ["campaign", "schedule", SHIPPED_ID, "--now", "2024-10-22T00:00Z"]
    ada = admin(sessions)

    refused = CliRunner().invoke(cli, schedule, env=env)

    assert isinstance(refused.exception, CampaignStateError), refused.output
    assert "four eyes" in str(refused.exception)
    with sessions() as s:
        assert [e.action for e in audit.entries(s)] == ["person_add"]  # nothing scheduled, nothing recorded

    web = Web(Settings().with_(studio_dir=tmp_path / "studio"), sessions, None, lambda: NOW)
    approve(web, ada, SHIPPED_ID)  # a campaign kept in files: nobody of the team edited it
    scheduled = CliRunner().invoke(cli, schedule, env=env)

    assert scheduled.exit_code == 0, scheduled.output
    assert f"scheduled {SHIPPED_ID}: " in scheduled.output
    with sessions() as s:
        lines = list(audit.entries(s))
        assert audit.verify(s).intact
    assert (lines[0].action, lines[0].campaign_id) == ("schedule", SHIPPED_ID)
    assert lines[0].actor.startswith("cli:")
