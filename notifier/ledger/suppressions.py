"""The suppression list: addresses, push tokens and recipients that must not get (some) messages again.

Entries are hashes (SHA-256 of the normalized value), so the list holds no address and survives a purge. Three
scopes:

- ``all``: every campaign, on that channel (a hard bounce, a drop for a bad address, a spam complaint);
- ``marketing``: marketing campaigns only, on every channel (an unsubscribe from a marketing message). Service
  announcements still go out, as the law allows;
- ``campaign:<id>``: that one campaign only, on every channel (an unsubscribe from a service message: the rest of
  its reminders stop, other campaigns still go out). The scope names its campaign so that one recipient can leave
  several campaigns, each an entry of its own under the list's one key (digest, scope).

The guard asks :func:`verdict` before every send, on every channel and transport (outbox included).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from notifier.campaign import SLUG
from notifier.ledger import audit
from notifier.ledger.models import PushToken, Recipient, Suppression
from notifier.ledger.queries import among, dialect_insert

KINDS = ("email", "token", "recipient")
SCOPES = ("all", "marketing")  # and campaign_scope(id) for each campaign
CAMPAIGN = "campaign:"  # the prefix of a campaign's scope


def campaign_scope(campaign_id: str) -> str:
    """The scope of an opt-out from one campaign only."""
    return f"{CAMPAIGN}{campaign_id}"


def check_scope(scope: str) -> str:
    """``scope`` when it is ``all``, ``marketing`` or ``campaign:<id>``; else a ValueError naming the three."""
    if scope in SCOPES or (scope.startswith(CAMPAIGN) and SLUG.fullmatch(scope.removeprefix(CAMPAIGN))):
        return scope
    raise ValueError(f"scope must be all, marketing or campaign:<campaign id>, not {scope!r}")


def normalized(kind: str, value: str) -> str:
    """The form that is hashed: an address in lower case without surrounding space; tokens and ids as given."""
    return value.strip().lower() if kind == "email" else value.strip()


def digest(kind: str, value: str) -> str:
    """The hash kept for ``value`` (an address, a push token or a recipient id)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    return hashlib.sha256(f"{kind}:{normalized(kind, value)}".encode()).hexdigest()


def kind_of(value: str) -> str:
    """What a value given on the command line is: an address when it has an @, else a push token."""
    return "email" if "@" in value else "token"


@dataclass(frozen=True)
class Entry:
    """One suppression as the CLI and the API show it (no address: only its hash)."""

    digest: str
    kind: str
    scope: str
    reason: str
    source: str
    campaign_id: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "kind": self.kind, "scope": self.scope, "reason": self.reason,
                "source": self.source, "campaign": self.campaign_id, "created_at": self.created_at.isoformat()}


ROWS_PER_STATEMENT = 2000  # 7 parameters a row: under SQLite's 32,766 and PostgreSQL's 65,535


@dataclass(frozen=True)
class Addition:
    """One entry to add: a (kind, value) pair in ``scope``, why, and who said so."""

    kind: str
    value: str
    scope: str
    reason: str
    source: str
    campaign_id: str | None = None

    def __post_init__(self) -> None:
        check_scope(self.scope)


def suppress(session: Session, values: Iterable[tuple[str, str]], *, scope: str, reason: str, source: str,
             now: datetime, campaign_id: str | None = None) -> int:
    """Add (kind, value) pairs in ``scope``; one already there keeps its first reason. Returns entries added."""
    return add(session, [Addition(kind, value, scope, reason, source, campaign_id) for kind, value in values], now)


def suppress_by_hand(session: Session, kind: str, value: str, *, scope: str, reason: str, source: str,
                     now: datetime) -> int:
    """A person's suppression (not a provider's event): added, with its line in the audit log, which says the kind,
    scope and reason, never the address or token (nor a hash of it, which anyone could compute for an address)."""
    added = suppress(session, [(kind, value)], scope=scope, reason=reason, source=source, now=now)
    if added:
        audit.record(session, "suppress", at=now, detail={"kind": kind, "scope": scope, "reason": reason[:64]})
    return added


def add(session: Session, additions: Iterable[Addition], now: datetime) -> int:
    """Add entries in key order (digest, scope), in one statement per ROWS_PER_STATEMENT: concurrent writers (a
    spike of webhook batches bouncing the same addresses in other orders, an unsubscribe) then lock the same keys
    in the same order and never deadlock. The first addition of a key keeps its reason, as does an entry already
    there. Returns entries added."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for a in additions:
        if a.value and a.value.strip():
            key = (digest(a.kind, a.value), a.scope)
            campaign_id = a.campaign_id or (a.scope.removeprefix(CAMPAIGN) if a.scope.startswith(CAMPAIGN) else None)
            rows.setdefault(key, {"digest": key[0], "kind": a.kind, "scope": a.scope, "reason": a.reason[:64],
                                  "source": a.source[:64], "campaign_id": campaign_id, "created_at": now})
    ordered = [rows[key] for key in sorted(rows)]
    added = 0
    for start in range(0, len(ordered), ROWS_PER_STATEMENT):
        stmt = dialect_insert(session, Suppression).values(ordered[start:start + ROWS_PER_STATEMENT])
        added += session.execute(stmt.on_conflict_do_nothing(index_elements=["digest", "scope"])).rowcount or 0
    return added


def lift(session: Session, kind: str, value: str, scope: str | None = None) -> int:
    """Remove ``value`` from the list (in ``scope``, or in every scope); returns entries removed.

    An unsubscribe lists the recipient, its address and its push tokens together, so lifting an address lifts the
    opt-outs (every scope but ``all``) of the recipients with that address and of their tokens too: otherwise
    the recipient's own entry would go on stopping what the address no longer does."""
    digests = [digest(kind, value)]
    if kind == "email" and scope != "all":
        for seq, recipient_id in session.execute(select(Recipient.seq, Recipient.id).where(
                func.lower(func.trim(Recipient.email)) == normalized(kind, value))):
            digests.append(digest("recipient", recipient_id))
            digests += [digest("token", t) for t in session.scalars(
                select(PushToken.token).where(PushToken.recipient_seq == seq))]
    stmt = delete(Suppression).where(Suppression.digest == digests[0])
    if scope is not None:
        stmt = stmt.where(Suppression.scope == scope)
    removed = session.execute(stmt).rowcount or 0
    if len(digests) > 1:
        related = delete(Suppression).where(Suppression.digest.in_(sorted(set(digests[1:]))),
                                            Suppression.scope != "all")
        removed += session.execute(related.where(Suppression.scope == scope) if scope else related).rowcount or 0
    if removed:  # only ever a person's doing: its audit line, without the address
        audit.record(session, "unsuppress", detail={"kind": kind, "scope": scope, "removed": removed})
    return removed


def find(session: Session, kind: str, value: str) -> list[Entry]:
    """The entries for ``value``, oldest first."""
    rows = session.scalars(select(Suppression).where(Suppression.digest == digest(kind, value))
                           .order_by(Suppression.id)).all()
    return [_entry(r) for r in rows]


def listing(session: Session, *, reason: str | None = None, limit: int = 100, offset: int = 0) -> list[Entry]:
    """The newest entries first, paged."""
    q = select(Suppression).order_by(Suppression.id.desc()).limit(limit).offset(offset)
    if reason:
        q = q.where(Suppression.reason == reason)
    return [_entry(r) for r in session.scalars(q)]


def scopes_of(session: Session, digests: Collection[str]) -> dict[str, dict[str, str]]:
    """For each listed digest among ``digests``: scope → reason (one query for a whole batch)."""
    found: dict[str, dict[str, str]] = {}
    if not digests:
        return found
    for d, scope, reason in session.execute(select(Suppression.digest, Suppression.scope, Suppression.reason)
                                            .where(among(session, Suppression.digest, sorted(digests)))):
        found.setdefault(d, {}).setdefault(scope, reason)
    return found


def _entry(row: Suppression) -> Entry:
    return Entry(row.digest, row.kind, row.scope, row.reason, row.source, row.campaign_id, row.created_at)


@dataclass(frozen=True)
class Listed:
    """What the list says about one claimed row's recipient: scope → reason, per identifier."""

    recipient: Mapping[str, str]
    email: Mapping[str, str]
    tokens: Mapping[str, Mapping[str, str]]  # only the tokens that are listed


NOT_LISTED = Listed({}, {}, {})


def verdict(listed: Listed, channel: str, tokens: tuple[str, ...], *, marketing: bool,
            campaign: str | None = None) -> tuple[str | None, tuple[str, ...]]:
    """The guard's rule: (why this row must not be sent, or None; the push tokens it may still use).

    A marketing campaign stops on every channel when the recipient, its address or any of its tokens opted out of
    marketing; ``campaign`` (any category) stops on every channel when one of them opted out of that campaign;
    ``all`` entries stop their own channel (the address for email, each token for push) in every campaign.
    """
    def stops(scopes: Mapping[str, str]) -> str | None:
        return scopes.get("all") or (scopes.get("marketing") if marketing else None)

    opt_outs = [*(["marketing"] if marketing else []), *([campaign_scope(campaign)] if campaign else [])]
    for scope in opt_outs:
        opted_out = [s[scope] for s in (listed.recipient, listed.email, *listed.tokens.values()) if scope in s]
        if opted_out:
            return f"suppressed: {opted_out[0]}", ()
    if channel == "email":
        why = stops(listed.email)
        return (f"suppressed: {why}", ()) if why else (None, tokens)
    usable = tuple(t for t in tokens if not stops(listed.tokens.get(t, {})))
    if tokens and not usable:
        return f"suppressed: {next(stops(listed.tokens[t]) for t in tokens)}", ()
    return None, usable
