"""Who may do what: four roles, each able to do what the one before can and more, and the one table that says
which role each capability needs. Every route of the dashboard and the API names its capability (:func:`needs`);
a route without one is public and must be listed in :data:`PUBLIC`, which a test holds every route to.

========  ===================================================================================
viewer    reads every page and report, except recipients' personal data
editor    and: personal data, writes campaigns, copy, translations, audiences, seeds, test sends;
          schedules (an approved version), pauses, resumes, cancels, retries
approver  and: approves a campaign version someone else wrote
admin     and: people, roles, purges, the suppression list
========  ===================================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from notifier.errors import RequestRefused


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    APPROVER = "approver"
    ADMIN = "admin"


ROLES = tuple(Role)  # in order: each can do what the ones before can (config.ROLES names them too)


class Can(StrEnum):
    """What a route does, named once for the table below."""

    READ = "read"  # pages, progress, results, the audit log
    PERSONAL = "personal"  # a recipient's page, not-acted ids, seeds, an upload's rejected rows
    EDIT = "edit"  # campaigns, copy, translations, audiences, seeds, dry runs, test sends
    SEND = "send"  # schedule, pause, resume, cancel, retry
    APPROVE = "approve"
    ADMIN = "admin"  # people, roles, purge, suppressions
    SELF = "self"  # one's own tokens and password: anyone logged in


LEAST: dict[Can, Role] = {
    Can.READ: Role.VIEWER, Can.SELF: Role.VIEWER,
    Can.PERSONAL: Role.EDITOR, Can.EDIT: Role.EDITOR, Can.SEND: Role.EDITOR,
    Can.APPROVE: Role.APPROVER,
    Can.ADMIN: Role.ADMIN,
}

# The routes anyone may call: logging in, accepting an invitation, the providers' and recipients' endpoints
# (each with a proof of its own: a signature, an unsubscribe or open token, a bearer token), health and docs.
PUBLIC = frozenset({
    "/", "/login", "/login/sso", "/login/sso/callback", "/invite/{token}", "/static/dashboard/{name}",
    "/static/dashboard/studio.js", "/healthz",
    "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/webhooks/sendgrid", "/webhooks/sendgrid/inbound",
    "/u/{token}", "/unsubscribe/{token}", "/actions", "/opens", "/api/v1/invites/{token}/accept",
})


def allows(role: str, can: Can) -> bool:
    """Whether ``role`` may do ``can``."""
    try:
        return ROLES.index(Role(role)) >= ROLES.index(LEAST[can])
    except ValueError:  # a role this version does not know: nothing
        return False


def refuse_unless(role: str, can: Can) -> None:
    """A 403 naming what it takes, unless ``role`` may do ``can``."""
    if not allows(role, can):
        least = LEAST[can]
        others = ", ".join(r.value for r in ROLES[ROLES.index(least):])
        raise RequestRefused(403, f"your role ({role}) cannot do this: it takes {others}")


F = TypeVar("F", bound=Callable[..., Any])


def needs(can: Can) -> Callable[[F], F]:
    """Mark a route's endpoint with the capability it takes (read by the dashboard's and the API's routes)."""

    def mark(endpoint: F) -> F:
        endpoint.capability = can  # type: ignore[attr-defined]
        return endpoint
    return mark


def capability_of(endpoint: Any) -> Can | None:
    return getattr(endpoint, "capability", None)
