"""Personal API tokens: ``ntf_<id>_<secret>``, shown once when made, kept as a SHA-256 of the secret (a token is
32 random bytes, so a fast hash is enough: nobody can guess one), revocable by their person or an admin, and
expiring (90 days unless asked otherwise, a year at most). A request with one acts as its person, with their role,
until the token is revoked or expires, its person is disabled, or an admin gives them a new link (which revokes
their tokens).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from notifier.errors import NotFound, UserError
from notifier.ledger import audit
from notifier.ledger.models import ApiToken, Person
from notifier.team.people import ACTIVE, Member, member

PREFIX = "ntf_"
_TOKEN = re.compile(r"ntf_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")
MAX_TOKENS = 50  # per person
DAYS, MAX_DAYS = 90, 365  # a token's life: by default, and at most


@dataclass(frozen=True)
class TokenInfo:
    """A token as its person sees it later: never the secret."""

    id: str
    name: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "created_at": self.created_at.isoformat(),
                "expires_at": self.expires_at.isoformat(),
                "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.created_at, row.expires_at, row.last_used_at, row.revoked_at)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def looks_like(token: str) -> bool:
    return token.startswith(PREFIX)


def issue(session: Session, person_id: int, name: str, now: datetime, days: int = DAYS) -> tuple[TokenInfo, str]:
    """A new token for the person, for ``days``: its record and the token itself, which is never shown again."""
    name = " ".join(name.split())[:100]
    if not name:
        raise UserError("name: say what the token is for (say, 'CI deploy')")
    if not 1 <= days <= MAX_DAYS:
        raise UserError(f"days: a token lives 1 to {MAX_DAYS} days")
    live = session.scalars(select(ApiToken.id).where(ApiToken.person_id == person_id, ApiToken.revoked_at.is_(None)))
    if len(list(live)) >= MAX_TOKENS:
        raise UserError(f"name: at most {MAX_TOKENS} tokens each; revoke one first")
    ident = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    secret = secrets.token_urlsafe(32)
    row = ApiToken(id=ident, person_id=person_id, name=name, digest=_digest(secret), created_at=now,
                   expires_at=now + timedelta(days=days))
    session.add(row)
    session.flush()
    audit.record(session, "token_create", at=now,
                 detail={"token": ident, "name": name, "person": person_id, "days": days})
    return _info(row), f"{PREFIX}{ident}_{secret}"


def mine(session: Session, person_id: int) -> list[TokenInfo]:
    rows = session.scalars(select(ApiToken).where(ApiToken.person_id == person_id).order_by(ApiToken.created_at))
    return [_info(r) for r in rows]


def revoke(session: Session, token_id: str, now: datetime, *, person_id: int | None) -> TokenInfo:
    """Revoke one token: one's own (``person_id``), or anyone's (None: an admin). It stops working at once."""
    row = session.get(ApiToken, token_id[:16], with_for_update=True)
    if row is None or (person_id is not None and row.person_id != person_id):
        raise NotFound(f"no such token: {token_id[:16]!r}")
    if row.revoked_at is None:
        row.revoked_at = now
        audit.record(session, "token_revoke", detail={"token": row.id, "name": row.name, "person": row.person_id},
                     at=now)
    return _info(row)


def person_of(session: Session, token: str, now: datetime) -> Member | None:
    """The active person a token speaks for, else None (unknown, wrong, revoked, or its person disabled)."""
    m = _TOKEN.fullmatch(token)
    row = session.get(ApiToken, m[1]) if m else None
    if m is None or row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if not hmac.compare_digest(row.digest, _digest(m[2])):
        return None
    person = session.get(Person, row.person_id)
    if person is None or person.state != ACTIVE:
        return None
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:  # at most a write a minute
        row.last_used_at = now
    return member(session, person.id)
