"""``POST /actions``: completed actions (``playlist_transferred``, ``refund_requested``) from the product, so later
waves whose ``skip_if`` names them are skipped with the reason. Bearer token ``NOTIFIER_API_TOKEN``.

``POST /opens``: the app reports that a push was opened, with the ``delivery_id`` and ``open_token`` the push
carries in its data (``links.open_token``): no other credential, so an app holds no secret, and a token opens
nothing but its own push's count. The Results page counts it once, however often it is posted.

The token is checked before the body is read, and the body is capped: an unauthenticated client can make the
server read nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import AfterValidator, BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from notifier.errors import RequestRefused
from notifier.feedback import ActionRejection, record_actions, record_push_opens
from notifier.ledger import audit
from notifier.ledger.db import transaction
from notifier.links import verify_open_token
from notifier.team import tokens
from notifier.team.people import has_team
from notifier.team.roles import Can, Role, refuse_unless
from notifier.web.requests import client_address, read_body, web_of

MAX_ACTIONS = 10_000
MAX_OPENS = 1000
MAX_BODY = MAX_ACTIONS * 400  # bytes: generous for 10,000 actions
router = APIRouter(tags=["actions"])


def _in_utc(at: datetime) -> datetime:
    try:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError:
        raise ValueError("cannot be expressed in UTC") from None


Utc = Annotated[datetime, AfterValidator(_in_utc)]  # UTC if no offset


class Action(BaseModel):
    """One thing a recipient did."""

    recipient_id: str = Field(min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    at: Utc | None = Field(None, description="when it happened (UTC if no offset); default: now")


class Open(BaseModel):
    """A push the app saw opened: the ``delivery_id`` and ``open_token`` of the push's data."""

    delivery_id: int = Field(ge=1, lt=2**63)
    token: str = Field(min_length=1, max_length=64, description="the push's data.open_token")
    at: Utc | None = Field(None, description="when it was opened (UTC if no offset); default: now")


class Opens(BaseModel):
    opens: list[Open] = Field(max_length=MAX_OPENS)


class Actions(BaseModel):
    actions: list[Action] = Field(max_length=MAX_ACTIONS)
    force: bool = Field(False, description="record actions that no campaign's skip_if uses")


Body = TypeVar("Body", Actions, Opens)  # what a POST of this module reads


def _schema() -> dict[str, Any]:
    """The body's JSON Schema, inline (no references), for the OpenAPI document."""
    action = Action.model_json_schema()
    return {"type": "object", "required": ["actions"], "properties": {
        "actions": {"type": "array", "items": action, "maxItems": MAX_ACTIONS},
        "force": {"type": "boolean", "default": False}}}


@dataclass(frozen=True)
class Caller:
    """Who a bearer token speaks for: a person of the team (a personal token) with their role, or the service
    token of ``NOTIFIER_API_TOKEN``: no person, so it approves nothing; an admin's powers before the ledger has a
    team, a viewer's (and POST /actions) after."""

    role: str
    actor: audit.Actor
    service: bool = False  # NOTIFIER_API_TOKEN, not a person's


SERVICE_TOKEN = "NOTIFIER_API_TOKEN"


def _has_team(web: Any) -> bool:
    with web.sessions() as s:
        return has_team(s)


def bearer(request: Request) -> Caller:
    """Who the request's bearer token is (a personal token, or NOTIFIER_API_TOKEN compared in constant time); a
    401 without a valid one. It reads the ledger: call it from a worker thread."""
    web = web_of(request)
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    given = given.strip()
    address = client_address(request)
    if scheme.lower() == "bearer" and tokens.looks_like(given):
        with transaction(web.sessions) as s:
            found = tokens.person_of(s, given, web.now())
        if found is None:
            raise RequestRefused(401, "this API token is unknown or revoked, or its person is disabled")
        return Caller(found.role, audit.Actor(found.actor_id, found.email, address, found.id))
    token = web.settings.api_token
    team = _has_team(web)
    if not token and not team:
        raise RequestRefused(503, "NOTIFIER_API_TOKEN is not set: POST /actions is off")
    if not token or scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise RequestRefused(401, "a bearer token is required (Authorization: Bearer <NOTIFIER_API_TOKEN>)")
    # Before a team, the service token is the studio API's admin; once people exist, what changes things is done
    # by a person (their own token), and the service token only reads and posts actions (POST /actions).
    return Caller(Role.VIEWER if team else Role.ADMIN, audit.Actor("api-token", SERVICE_TOKEN, address), service=True)


@router.post("/actions", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": _schema()}}}}, responses={
    401: {"description": "no or a wrong bearer token"}, 413: {"description": "the body is too big"},
    422: {"description": "the body is not a list of actions"}, 503: {"description": "no API token is configured"}})
async def post_actions(request: Request) -> dict[str, Any]:
    """Record the actions; each unknown recipient or action is rejected alone, with its index."""
    caller = await run_in_threadpool(bearer, request)
    if not caller.service:  # the service token is what the product posts its actions with
        refuse_unless(caller.role, Can.EDIT)
    web = web_of(request)
    body = await _body(request, Actions, MAX_BODY, "actions")
    now = web.now()
    # In (recipient, action) order: concurrent batches lock their rows in one order, so none waits in a cycle.
    items = sorted(((i, a.recipient_id, a.action, a.at or now) for i, a in enumerate(body.actions)),
                   key=lambda item: (item[1], item[2], item[0]))

    def apply() -> tuple[int, list[Any]]:
        with transaction(web.sessions) as s:
            return record_actions(s, items, force=body.force)

    recorded, rejected = await run_in_threadpool(apply)
    return _answer(recorded, rejected)


async def _body(request: Request, model: type[Body], limit: int, what: str) -> Body:
    """The request's JSON body as ``model``, read up to ``limit`` bytes; a 422 naming the first problems."""
    try:
        return model.model_validate_json(await read_body(request, limit))
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise RequestRefused(422, f"not a list of {what}: {where}") from None


def _answer(recorded: int, rejected: list[ActionRejection]) -> dict[str, Any]:
    return {"recorded": recorded, "rejected": [{"index": r.line, "reason": r.reason}
                                               for r in sorted(rejected, key=lambda r: r.line or 0)]}


NOT_OURS = "no push of ours has this delivery_id and open_token"


@router.post("/opens", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "required": ["opens"], "properties": {
        "opens": {"type": "array", "items": Open.model_json_schema(), "maxItems": MAX_OPENS}}}}}}}, responses={
    413: {"description": "the body is too big"}, 422: {"description": "the body is not a list of opens"}})
async def post_opens(request: Request) -> dict[str, Any]:
    """Count pushes the app saw opened, each proven by its own open token; a wrong one is rejected alone, with the
    same words as a push we never sent."""
    web = web_of(request)
    body = await _body(request, Opens, MAX_OPENS * 200, "opens")
    now, keys = web.now(), web.settings.secret_keys
    proven, forged = [], []
    for i, o in enumerate(body.opens):  # each token checked once
        if verify_open_token(keys, o.delivery_id, o.token):
            proven.append((i, o.delivery_id, o.at or now))
        else:
            forged.append(ActionRejection(i, NOT_OURS))

    def apply() -> tuple[int, list[ActionRejection]]:
        with transaction(web.sessions) as s:
            return record_push_opens(s, proven)

    recorded, rejected = await run_in_threadpool(apply)
    return _answer(recorded, [*forged, *(ActionRejection(r.line, NOT_OURS) for r in rejected)])
