"""``POST /webhooks/sendgrid``: SendGrid's signed Event Webhook, verified, then applied in one transaction.

The order matters: the size cap (413), then the signature and its age (401, 403), then the batch's shape (400),
then the ledger. A refused batch changes nothing; an accepted one is applied whole, and a replay of it adds nothing
(events are kept once by ``sg_event_id``). A ledger that fails answers 503, so SendGrid posts the batch again.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from notifier.channels import sendgrid_events
from notifier.errors import RequestRefused
from notifier.feedback import apply_events
from notifier.ledger.db import transaction
from notifier.web.requests import read_body, web_of

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the batch is malformed; nothing of it was applied"},
    401: {"description": "the signature headers are missing"},
    403: {"description": "the signature is wrong, or the batch is older than the tolerance"},
    413: {"description": "the body is over NOTIFIER_WEBHOOK_MAX_BYTES"},
    503: {"description": "no verification key is configured, or the ledger is unavailable"},
}
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "array", "items": {"type": "object"}, "description": "SendGrid's events, as it posts them"}}}}}


@router.post("/webhooks/sendgrid", responses=_REFUSALS, openapi_extra=_BODY)
async def sendgrid_webhook(request: Request) -> dict[str, Any]:
    """Apply a signed batch of SendGrid events; answers what it did, in counts."""
    web = web_of(request)
    if web.webhook is None:
        raise RequestRefused(503, "NOTIFIER_SENDGRID_WEBHOOK_KEY is not set: events cannot be verified")
    body = await read_body(request, web.settings.webhook_max_bytes)
    sendgrid_events.verify(web.webhook, body, request.headers, tolerance=web.settings.webhook_tolerance_seconds)
    # The age is on the real clock (a replay is a matter of real time), whatever clock the app runs on.
    events = sendgrid_events.parse(body)

    def apply() -> dict[str, Any]:
        with transaction(web.sessions) as s:
            return apply_events(s, events, web.now()).as_dict()

    report = await run_in_threadpool(apply)
    log.info("sendgrid webhook: %d events, %d new, %d suppressions added", report["received"], report["new"],
             report["suppressed"])
    return report
