"""People of the team: the first admin from the command line, the others invited by an admin through a one-time
link on which they set their own password (scrypt, as the dashboard's), roles changed and people disabled by an
admin. Every change is a line of the audit log, written in the same transaction.

A person is never deleted (the audit log names them); disabling one ends their sessions and their tokens' use at
once: every request reads the person (state and ``epoch``, which every change of password, role or state moves).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from notifier.errors import NotFound, RequestRefused, UserError
from notifier.ledger import audit
from notifier.ledger.models import ApiToken, Invite, Person
from notifier.team.passwords import COST, hash_password, verify_password, weak_password
from notifier.team.roles import ROLES, Role

INVITE_LIFETIME = timedelta(days=7)
NOT_INVITED = "this invitation link is unknown, used or expired: ask an admin for a new one"  # one answer for all three
_EMAIL = re.compile(r"[^@\s<>\"',;()\[\]\\]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}")
ACTIVE, INVITED, DISABLED = "active", "invited", "disabled"
_decoy: list[str] = []


def _decoy_hash() -> str:
    """A hash at the real cost to check a password against when the address has none (unknown, or invited): the
    answer takes as long either way, so a login tells nobody who is in the team. Made once, on first use."""
    if not _decoy:
        _decoy.append(hash_password(secrets.token_urlsafe(16), cost=COST))
    return _decoy[0]


@dataclass(frozen=True)
class Member:
    """A person as the pages and the API show them (never their password hash)."""

    id: int
    email: str
    name: str
    role: str
    state: str
    epoch: int
    created_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "email": self.email, "name": self.name, "role": self.role, "state": self.state,
                "created_at": self.created_at.isoformat()}

    @property
    def actor_id(self) -> str:
        return f"person:{self.id}"


def _member(p: Person) -> Member:
    return Member(p.id, p.email, p.name, p.role, p.state, p.epoch, p.created_at)


def checked_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.fullmatch(email):
        raise UserError(f"email: {email[:80]!r} is not an email address")
    return email


def checked_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise UserError("name: between 1 and 200 characters, on one line")
    return name


def checked_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UserError(f"role: {role[:40]!r} is not one of {', '.join(r.value for r in ROLES)}") from None


def checked_password(password: str) -> str:
    why = weak_password(password)
    if why:
        raise UserError(f"password: {why}")
    return password


def has_team(session: Session) -> bool:
    """Whether anyone was ever added: from then on the shared admin password no longer logs in."""
    return session.scalar(select(func.count()).select_from(Person)) != 0


def listing(session: Session) -> list[Member]:
    return [_member(p) for p in session.scalars(select(Person).order_by(Person.id))]


def member(session: Session, person_id: int) -> Member:
    found = session.get(Person, person_id)
    if found is None:
        raise NotFound(f"no such person: {person_id}")
    return _member(found)


def active(session: Session, person_id: int, epoch: int) -> Member | None:
    """The person a session or token speaks for, if they are still active and nothing changed since (``epoch``)."""
    found = session.get(Person, person_id)
    return _member(found) if found is not None and found.state == ACTIVE and found.epoch == epoch else None


def add_admin(session: Session, email: str, name: str, password: str, now: datetime) -> Member:
    """An active admin (``notifier people add-admin``): how the first person comes to be."""
    person = _new(session, email, name, Role.ADMIN, now)
    person.password_hash, person.state = hash_password(checked_password(password)), ACTIVE
    session.flush()
    audit.record(session, "person_add", detail={"person": person.id, "email": person.email, "role": person.role},
                 at=now)
    return _member(person)


def _new(session: Session, email: str, name: str, role: Role, now: datetime) -> Person:
    email = checked_email(email)
    if session.scalar(select(Person.id).where(Person.email == email)) is not None:
        raise RequestRefused(409, f"{email} is already in the team")
    person = Person(email=email, name=checked_name(name), role=role.value, state=INVITED, password_hash=None, epoch=0,
                    created_at=now)
    session.add(person)
    try:
        session.flush()
    except IntegrityError:  # the same address added at the same moment
        raise RequestRefused(409, f"{email} is already in the team") from None
    return person


def invite_url(public_url: str, token: str) -> str:
    """The one-time link an invited person opens, on the server's public address."""
    return f"{public_url}/invite/{token}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def invite(session: Session, email: str, name: str, role: str, now: datetime) -> tuple[Member, str]:
    """A new person, invited: the token of their one-time link (``/invite/<token>``), valid for 7 days. Inviting
    someone invited before (and not yet active) gives them a new link; the old one stops working."""
    email = checked_email(email)
    existing = session.scalars(select(Person).where(Person.email == email)).first()
    if existing is not None and existing.state != INVITED:
        raise RequestRefused(409, f"{email} is already in the team")
    person = existing or _new(session, email, name, checked_role(role), now)
    if existing is not None:
        person.role, person.name = checked_role(role).value, checked_name(name)
    token = _new_link(session, person.id, now)
    audit.record(session, "invite", detail={"person": person.id, "email": email, "role": person.role}, at=now)
    return _member(person), token


def invitation(session: Session, token: str, now: datetime) -> Member:
    """The person a link invites; a 404 when it is unknown, used or expired (one answer for all three)."""
    row = session.get(Invite, _digest(token)) if 20 <= len(token) <= 100 else None
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise NotFound(NOT_INVITED)
    person = session.get(Person, row.person_id)
    if person is None or person.state != INVITED:
        raise NotFound(NOT_INVITED)
    return _member(person)


def accept(session: Session, token: str, password: str, now: datetime, name: str | None = None) -> Member:
    """Set the invited person's password and make them active; the link works once."""
    found = invitation(session, token, now)
    person = session.get(Person, found.id, with_for_update=True)
    row = session.get(Invite, _digest(token), with_for_update=True)
    assert person is not None and row is not None
    if row.used_at is not None or person.state != INVITED:  # the same link, at the same moment
        raise NotFound(NOT_INVITED)
    person.password_hash = hash_password(checked_password(password))
    person.state, person.epoch = ACTIVE, person.epoch + 1
    if name:
        person.name = checked_name(name)
    row.used_at = now
    session.flush()
    audit.record(session, "accept", detail={"person": person.id}, at=now,
                 actor=audit.Actor(f"person:{person.id}", person.email, audit.current().address, person.id))
    return _member(person)


def change_password(session: Session, person_id: int, current: str, new: str, now: datetime) -> Member:
    """One's own new password, proven by the current one; every other session of theirs ends (the epoch moves)."""
    person = _locked(session, person_id)
    if not person.password_hash or not verify_password(person.password_hash, current):
        raise UserError("current password: that is not your password")
    person.password_hash, person.epoch = hash_password(checked_password(new)), person.epoch + 1
    audit.record(session, "password", detail={"person": person.id}, at=now)
    return _member(person)


def reset(session: Session, person_id: int, now: datetime) -> tuple[Member, str]:
    """An admin's answer to a forgotten password: the password goes, the person is invited again (their sessions
    and tokens stop), and the new one-time link lets them choose another."""
    person = _locked(session, person_id)
    if person.state == DISABLED:
        raise RequestRefused(409, f"{person.email} is disabled: enable them first")
    person.password_hash, person.state, person.epoch = None, INVITED, person.epoch + 1
    session.execute(update(ApiToken).where(ApiToken.person_id == person.id, ApiToken.revoked_at.is_(None))
                    .values(revoked_at=now))  # whoever had the password may have made tokens too
    token = _new_link(session, person.id, now)
    audit.record(session, "reset", detail={"person": person.id, "email": person.email}, at=now)
    return _member(person), token


def _new_link(session: Session, person_id: int, now: datetime) -> str:
    """A new one-time link for the person; any earlier one they did not use stops working."""
    session.execute(Invite.__table__.delete().where(Invite.person_id == person_id, Invite.used_at.is_(None)))
    token = secrets.token_urlsafe(32)
    session.add(Invite(digest=_digest(token), person_id=person_id, expires_at=now + INVITE_LIFETIME))
    session.flush()
    return token


def authenticate(session: Session, email: str, password: str) -> Member | None:
    """The active person with this email and password, else None (in about the same time either way)."""
    try:
        email = checked_email(email)
    except UserError:
        email = ""
    person = session.scalars(select(Person).where(Person.email == email)).first() if email else None
    known = person is not None and bool(person.password_hash)
    stored = person.password_hash if known and person is not None and person.password_hash else _decoy_hash()
    right = verify_password(stored, password) and known
    return _member(person) if right and person is not None and person.state == ACTIVE else None


def set_role(session: Session, person_id: int, role: str, now: datetime, by: int | None) -> Member:
    """Change a person's role (their sessions end: they log in again with the new one). An admin cannot demote
    themselves, so the team always keeps the admin who is acting."""
    new = checked_role(role)
    person = _locked(session, person_id)
    if by == person.id and new != Role.ADMIN:
        raise RequestRefused(409, "you cannot take your own admin role away: ask another admin")
    old = person.role
    if old != new.value:
        person.role, person.epoch = new.value, person.epoch + 1
        audit.record(session, "role", detail={"person": person.id, "email": person.email, "from": old, "to": new.value},
                     at=now)
    return _member(person)


def set_enabled(session: Session, person_id: int, enabled: bool, now: datetime, by: int | None) -> Member:
    """Disable a person (their sessions and tokens stop at once) or enable them again."""
    person = _locked(session, person_id)
    if by == person.id and not enabled:
        raise RequestRefused(409, "you cannot disable yourself: ask another admin")
    if not enabled and person.state != DISABLED:
        person.state, person.epoch = DISABLED, person.epoch + 1
        audit.record(session, "disable", detail={"person": person.id, "email": person.email}, at=now)
    elif enabled and person.state == DISABLED:
        person.state = ACTIVE if person.password_hash else INVITED
        person.epoch += 1
        audit.record(session, "enable", detail={"person": person.id, "email": person.email}, at=now)
    return _member(person)


def _locked(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id, with_for_update=True)
    if person is None:
        raise NotFound(f"no such person: {person_id}")
    return person
