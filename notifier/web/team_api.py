"""The team under ``/api/v1``: who the token is, people and roles (admins), accepting an invitation, one's own API
tokens, a campaign's approval, and the audit log; the same calls as the dashboard's team pages
(``web.dashboard.team``), with the same rules, and every change a line of the audit log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request, Security
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from notifier.errors import RequestRefused
from notifier.ledger import audit
from notifier.ledger.db import transaction
from notifier.studio import service
from notifier.team import approvals, people, tokens
from notifier.team.roles import Can, allows, needs
from notifier.web.actions import Caller
from notifier.web.api_route import DOCUMENTED_BEARER, REFUSALS, ApiRoute
from notifier.web.requests import web_of

PERSON = Path(ge=1, le=2**31 - 1, description="a person's id (notifier people list)")
router = APIRouter(prefix="/api/v1", tags=["team"], route_class=ApiRoute, responses=REFUSALS,
                   dependencies=[Security(DOCUMENTED_BEARER)])


class InviteIn(BaseModel):
    email: str = Field(max_length=254)
    name: str = Field(max_length=200)
    role: str = Field("editor", max_length=16, description="viewer | editor | approver | admin")


class PersonChange(BaseModel):
    role: str | None = Field(None, max_length=16)
    enabled: bool | None = None


class AcceptIn(BaseModel):
    password: str = Field(max_length=1024)
    name: str | None = Field(None, max_length=200)


class PasswordIn(BaseModel):
    current: str = Field(max_length=1024)
    new: str = Field(max_length=1024)


class TokenIn(BaseModel):
    name: str = Field(max_length=100, description="what the token is for")
    days: int = Field(tokens.DAYS, ge=1, le=tokens.MAX_DAYS, description="how long it works")


class ApproveIn(BaseModel):
    version: int | None = Field(None, ge=1, le=2**31 - 1,
                                description="the version you read; refused (409) when a newer one exists")
    fingerprint: str | None = Field(None, max_length=64, description="or the fingerprint GET .../approval showed")


def _caller(request: Request) -> Caller:
    return request.state.caller  # type: ignore[no-any-return]


def _person(request: Request) -> int:
    """The caller's person; the service token (NOTIFIER_API_TOKEN) is none (409)."""
    found = _caller(request).actor.person_id
    if found is None:
        raise RequestRefused(409, "NOTIFIER_API_TOKEN is not a person: use a personal token (notifier serve's "
                                  "/account page, or POST /api/v1/tokens with one)")
    return found


@router.get("/me")
@needs(Can.SELF)
def me(request: Request) -> dict[str, Any]:
    """Who this token acts as, and with which role."""
    caller = _caller(request)
    return {"actor": caller.actor.id, "name": caller.actor.name, "role": caller.role,
            "person_id": caller.actor.person_id}


# --- people -----------------------------------------------------------------------------------------------------


@router.get("/people")
@needs(Can.ADMIN)
def list_people(request: Request) -> list[dict[str, Any]]:
    with web_of(request).sessions() as s:
        return [m.as_dict() for m in people.listing(s)]


@router.post("/people", status_code=201)
@needs(Can.ADMIN)
def invite(request: Request, body: InviteIn) -> dict[str, Any]:
    """Invite someone: their one-time link (``invite_url``), shown only in this answer, valid for 7 days."""
    web = web_of(request)
    with transaction(web.sessions) as s:
        member, token = people.invite(s, body.email, body.name, body.role, web.now())
    return {"person": member.as_dict(), "invite_url": people.invite_url(web.settings.public_url, token)}


@router.patch("/people/{person_id}")
@needs(Can.ADMIN)
def change_person(request: Request, body: PersonChange, person_id: int = PERSON) -> dict[str, Any]:
    """A new role, or disabled (``enabled: false``) or enabled again; their sessions end either way."""
    web, by = web_of(request), _caller(request).actor.person_id
    with transaction(web.sessions) as s:
        member = people.member(s, person_id)
        if body.role is not None:
            member = people.set_role(s, person_id, body.role, web.now(), by)
        if body.enabled is not None:
            member = people.set_enabled(s, person_id, body.enabled, web.now(), by)
    return member.as_dict()


@router.post("/people/{person_id}/reset")
@needs(Can.ADMIN)
def reset_person(request: Request, person_id: int = PERSON) -> dict[str, Any]:
    """A forgotten password: the person is invited again (sessions and tokens stop until they choose a new
    password); their new one-time link is in this answer only."""
    web = web_of(request)
    with transaction(web.sessions) as s:
        member, token = people.reset(s, person_id, web.now())
    return {"person": member.as_dict(), "invite_url": people.invite_url(web.settings.public_url, token)}


@router.post("/me/password")
@needs(Can.SELF)
def change_password(request: Request, body: PasswordIn) -> dict[str, Any]:
    """Your own new password, proven by the current one; your sessions end (your tokens go on)."""
    web = web_of(request)
    with transaction(web.sessions) as s:
        return people.change_password(s, _person(request), body.current, body.new, web.now()).as_dict()


@router.post("/invites/{token}/accept")
def accept(request: Request, token: str, body: AcceptIn) -> dict[str, Any]:
    """Set the invited person's password (no bearer token: the link's token is the proof); then log in, or make a
    personal API token from the dashboard."""
    web = web_of(request)
    with transaction(web.sessions) as s:
        return people.accept(s, token, body.password, web.now(), body.name).as_dict()


# --- tokens -----------------------------------------------------------------------------------------------------


@router.get("/tokens")
@needs(Can.SELF)
def my_tokens(request: Request) -> list[dict[str, Any]]:
    with web_of(request).sessions() as s:
        return [t.as_dict() for t in tokens.mine(s, _person(request))]


@router.post("/tokens", status_code=201)
@needs(Can.SELF)
def new_token(request: Request, body: TokenIn) -> dict[str, Any]:
    """A new token of yours: ``token`` is in this answer only."""
    web = web_of(request)
    with transaction(web.sessions) as s:
        info, secret = tokens.issue(s, _person(request), body.name, web.now(), body.days)
    return {**info.as_dict(), "token": secret}


@router.delete("/tokens/{token_id}")
@needs(Can.SELF)
def revoke_token(request: Request, token_id: str) -> dict[str, Any]:
    """Revoke one of your tokens (an admin: anyone's); it stops working at once."""
    web, caller = web_of(request), _caller(request)
    mine = None if allows(caller.role, Can.ADMIN) else _person(request)
    with transaction(web.sessions) as s:
        return tokens.revoke(s, token_id, web.now(), person_id=mine).as_dict()


# --- approval ---------------------------------------------------------------------------------------------------


@router.get("/campaigns/{campaign_id}/approval")
@needs(Can.READ)
def get_approval(request: Request, campaign_id: str) -> dict[str, Any]:
    """Whether the latest version is approved, who changed it since the last approval, and the diff since."""
    web = web_of(request)
    service.synced(web)
    with web.sessions() as s:
        return approvals.status(s, web.settings, service.checked_id(campaign_id)).as_dict()


@router.post("/campaigns/{campaign_id}/approve")
@needs(Can.APPROVE)
def approve(request: Request, campaign_id: str, body: ApproveIn | None = None) -> dict[str, Any]:
    """Approve the latest version (409 for whoever changed it since the last approval, or when ``version`` is not
    the latest)."""
    web = web_of(request)
    with web.sessions() as s:
        member = people.member(s, _person(request))
    with transaction(web.sessions) as s:
        found = approvals.approve(s, web.settings, service.checked_id(campaign_id), member, web.now(),
                                  body.version if body else None, body.fingerprint if body else None)
    service.synced(web)
    return found.as_dict()


# --- the audit log ----------------------------------------------------------------------------------------------


@router.get("/audit")
@needs(Can.READ)
def get_audit(request: Request, campaign: str | None = Query(None, max_length=64),
              user: str | None = Query(None, max_length=254, description="person:<id>, an email, or cli:<name>"),
              action: str | None = Query(None, max_length=32), before: int | None = Query(None, ge=1, le=2**62),
              limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """Lines, newest first (``before``: older than this line)."""
    with web_of(request).sessions() as s:
        return {"lines": [e.as_dict() for e in audit.entries(s, campaign_id=campaign, actor=user, action=action,
                                                             before=before, limit=limit)]}


@router.get("/audit/verify")
@needs(Can.READ)
def verify_audit(request: Request) -> dict[str, Any]:
    """Whether the chain holds: every line, in order, each hash what its line says; the last line's hash."""
    with web_of(request).sessions() as s:
        check = audit.verify(s)
    return {"intact": check.intact, "lines": check.lines, "problem": check.problem, "head": check.head}


@router.get("/audit.csv", response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
@needs(Can.READ)
def get_audit_csv(request: Request, campaign: str | None = Query(None, max_length=64),
                  user: str | None = Query(None, max_length=254),
                  action: str | None = Query(None, max_length=32)) -> StreamingResponse:
    from notifier.web.dashboard.results import csv_response

    sessions = web_of(request).sessions

    def rows() -> Any:  # the session lives as long as the download
        with sessions() as s:
            yield from audit.csv_rows(audit.entries(s, campaign_id=campaign, actor=user, action=action))

    return csv_response(rows(), "audit.csv")
