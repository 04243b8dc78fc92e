"""``POST /webhooks/sendgrid/inbound``: the unsubscribe by mail that ``List-Unsubscribe``'s ``mailto:`` offers.

With NOTIFIER_UNSUBSCRIBE_MAILTO set, every email offers ``<mailto:ADDRESS?subject=unsubscribe%20TOKEN>`` beside its
one-click link. A mail client that uses it sends a mail to ADDRESS; SendGrid Inbound Parse (the MX of ADDRESS's
domain pointed at mx.sendgrid.net, this URL in its settings) posts that mail here as multipart/form-data: the fields
``to``, ``from``, ``subject``, ``envelope``, ``text``, ``html``, ``headers``, ``charsets``, …, or, with "POST the
raw, full MIME message", ``email`` (the whole message) beside them. The token is looked for in the subject, then in
the raw message's subject, then in the text; the first genuine one is verified exactly as the one-click link's is
(``links.verify_unsubscribe_token`` with the current and previous keys) and unsubscribes the same way
(``feedback.unsubscribe``, source ``unsubscribe-mailto``).

Answers: 400 for a body that is not multipart/form-data (SendGrid always posts one); otherwise 200 with the same
body whatever the mail held, a mail over NOTIFIER_WEBHOOK_MAX_BYTES included (it is not read, and a count is
logged): SendGrid posts a mail again until it gets a 2xx, for up to three days, and a sender learns nothing about
its token. A ledger that fails answers 503, so SendGrid posts the mail again. Nothing of a mail is logged.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.parser import HeaderParser
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from notifier.errors import RequestRefused
from notifier.links import tokens_in
from notifier.web.requests import Web, read_body, web_of
from notifier.web.unsubscribe import delivery_of, unsubscribe_now

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])
SOURCE = "unsubscribe-mailto"
TEXT_CHARS = 65_536  # of a mail's text, where a token is looked for after the subject
RECEIVED = {"status": "received"}  # the one answer to every well-formed mail
_FIELDS = ("to", "from", "subject", "envelope", "text", "html", "headers", "charsets", "email")
_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {name: {"type": "string"} for name in _FIELDS},
    "description": "a mail as SendGrid Inbound Parse posts it"}}}}}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not multipart/form-data"},
    503: {"description": "the ledger is unavailable (SendGrid posts the mail again)"},
}


@router.post("/webhooks/sendgrid/inbound", responses=_REFUSALS, openapi_extra=_BODY)
async def sendgrid_inbound(request: Request) -> dict[str, str]:
    """Unsubscribe the sender of a mail to the ``mailto:`` address by the token its subject carries."""
    web = web_of(request)
    limit = web.settings.webhook_max_bytes
    try:
        body = await read_body(request, limit)
    except RequestRefused as exc:
        if exc.status != 413:
            raise
        log.info("inbound mail over %d bytes: not read", limit)  # an attachment, most likely; never posted again
        return RECEIVED
    form = await _form(request, body, limit)
    try:
        fields = {name: await _text(form.get(name), limit) for name in ("subject", "email", "text")}
    finally:
        await form.close()
    delivery_id = _genuine(web, _places(fields))
    if delivery_id is None:
        log.info("inbound mail: no genuine unsubscribe token")
        return RECEIVED
    done = await unsubscribe_now(web, delivery_id, SOURCE)
    if done is None:
        log.info("inbound mail: its token names a delivery that is gone")
    else:
        log.info("inbound mail: unsubscribed (%s, %d entries added)", done.opt_out.scope, done.added)
    return RECEIVED


async def _form(request: Request, body: bytes, limit: int) -> FormData:
    """The multipart form of ``body`` (already read within ``limit``); 400 when it is not one."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise RequestRefused(400, "expected multipart/form-data, as SendGrid Inbound Parse posts")

    async def once() -> AsyncIterator[bytes]:
        yield body

    try:
        return await MultiPartParser(request.headers, once(), max_files=1000, max_fields=1000,
                                     max_part_size=limit).parse()
    except MultiPartException:
        raise RequestRefused(400, "the multipart body is malformed") from None


async def _text(value: str | UploadFile | None, limit: int) -> str:
    """A field as text (a part sent as a file too); latin-1 for bytes, which keeps every token's ASCII as it is."""
    if isinstance(value, UploadFile):
        return (await value.read(limit)).decode("latin-1")
    return value or ""


def _places(fields: dict[str, str]) -> Iterator[str]:
    """Where a token may be, in order: the subject, the raw message's subject, then the text."""
    yield fields["subject"]
    if fields["email"]:
        yield _raw_subject(fields["email"])
    yield fields["text"][:TEXT_CHARS]


def _raw_subject(raw: str) -> str:
    """The decoded Subject of a raw message (RFC 2047 words: an ``_`` of a token may be written ``=5F``)."""
    subject = HeaderParser().parsestr(raw, headersonly=True).get("subject", "")
    try:
        return str(make_header(decode_header(str(subject))))
    except (HeaderParseError, UnicodeError, LookupError, ValueError):  # an unknown charset, a broken word
        return str(subject)


def _genuine(web: Web, places: Iterator[str]) -> int | None:
    """The delivery id of the first genuine, unexpired token found in ``places``, else None."""
    for text in places:
        for candidate in tokens_in(text):
            delivery_id = delivery_of(web, candidate)
            if delivery_id is not None:
                return delivery_id
    return None
