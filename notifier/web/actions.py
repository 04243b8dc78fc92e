"""``POST /actions``: completed actions (``playlist_transferred``, ``refund_requested``) from the product, so later
waves whose ``skip_if`` names them are skipped with the reason, and push opens from the app. Bearer token
``NOTIFIER_API_TOKEN``.

A push open is ``{"action": "opened", "delivery_id": 123}``: the app reads the ``delivery_id`` from the data of
the notification it was opened from (every push carries it) and posts it; the Results page counts it as that
message's open, once however often it is posted.

The token is checked before the body is read, and the body is capped: an unauthenticated client can make the
server read nothing.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from starlette.concurrency import run_in_threadpool

from notifier.errors import RequestRefused
from notifier.feedback import OPENED, record_actions
from notifier.ledger.db import transaction
from notifier.web.requests import read_body, web_of

MAX_ACTIONS = 10_000
MAX_BODY = MAX_ACTIONS * 400  # bytes: generous for 10,000 actions
router = APIRouter(tags=["actions"])


class Action(BaseModel):
    """One thing a recipient did: an action by ``recipient_id``, or ``opened`` with the push's ``delivery_id``."""

    recipient_id: str | None = Field(None, min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    delivery_id: int | None = Field(None, ge=1, lt=2**63, description=f"with action {OPENED!r}: the push opened")
    at: datetime | None = Field(None, description="when it happened (UTC if no offset); default: now")

    @model_validator(mode="after")
    def _one_kind(self) -> Action:
        if self.action == OPENED and self.delivery_id is None:
            raise ValueError(f"action {OPENED!r} needs the push's delivery_id")
        if self.action != OPENED and self.recipient_id is None:
            raise ValueError("recipient_id is required")
        return self

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
    items = [(i, a.recipient_id, a.action, a.at or now) if a.delivery_id is None else
             (i, a.delivery_id, a.action, a.at or now) for i, a in enumerate(body.actions)]

    def apply() -> tuple[int, list[Any]]:
        with transaction(web.sessions) as s:
            return record_actions(s, items, force=body.force)

    recorded, rejected = await run_in_threadpool(apply)
    return {"recorded": recorded, "rejected": [{"index": r.line, "reason": r.reason} for r in rejected]}
