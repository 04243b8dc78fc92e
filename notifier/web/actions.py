"""``POST /actions``: completed actions (``playlist_transferred``, ``refund_requested``) from the product, so later
waves whose ``skip_if`` names them are skipped with the reason. Bearer token ``NOTIFIER_API_TOKEN``.

The token is checked before the body is read, and the body is capped: an unauthenticated client can make the
server read nothing.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from notifier.errors import RequestRefused
from notifier.feedback import record_actions
from notifier.ledger.db import transaction
from notifier.web.requests import read_body, web_of

MAX_ACTIONS = 10_000
MAX_BODY = MAX_ACTIONS * 400  # bytes: generous for 10,000 actions
router = APIRouter(tags=["actions"])


class Action(BaseModel):
    """One thing a recipient did."""

    recipient_id: str = Field(min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    at: datetime | None = Field(None, description="when it happened (UTC if no offset); default: now")

    @field_validator("at")
    @classmethod
    def _in_utc(cls, at: datetime | None) -> datetime | None:
        if at is None:
            return None
        try:
            return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        except OverflowError:
            raise ValueError("cannot be expressed in UTC") from None


class Actions(BaseModel):
    actions: list[Action] = Field(max_length=MAX_ACTIONS)
    force: bool = Field(False, description="record actions that no campaign's skip_if uses")


def _schema() -> dict[str, Any]:
    """The body's JSON Schema, inline (no references), for the OpenAPI document."""
    action = Action.model_json_schema()
    return {"type": "object", "required": ["actions"], "properties": {
        "actions": {"type": "array", "items": action, "maxItems": MAX_ACTIONS},
        "force": {"type": "boolean", "default": False}}}


def bearer(request: Request) -> None:
    """Refuse a request without the configured bearer token (compared in constant time)."""
    token = web_of(request).settings.api_token
    if not token:
        raise RequestRefused(503, "NOTIFIER_API_TOKEN is not set: POST /actions is off")
    scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise RequestRefused(401, "a bearer token is required (Authorization: Bearer <NOTIFIER_API_TOKEN>)")


@router.post("/actions", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": _schema()}}}}, responses={
    401: {"description": "no or a wrong bearer token"}, 413: {"description": "the body is too big"},
    422: {"description": "the body is not a list of actions"}, 503: {"description": "no API token is configured"}})
async def post_actions(request: Request) -> dict[str, Any]:
    """Record the actions; each unknown recipient or action is rejected alone, with its index."""
    bearer(request)
    web = web_of(request)
    try:
        body = Actions.model_validate_json(await read_body(request, MAX_BODY))
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5])
        raise RequestRefused(422, f"not a list of actions: {where}") from None
    now = web.now()
    items = [(i, a.recipient_id, a.action, a.at or now) for i, a in enumerate(body.actions)]

    def apply() -> tuple[int, list[Any]]:
        with transaction(web.sessions) as s:
            return record_actions(s, items, force=body.force)

    recorded, rejected = await run_in_threadpool(apply)
    return {"recorded": recorded, "rejected": [{"index": r.line, "reason": r.reason} for r in rejected]}
