"""SendGrid v3 ``POST /v3/mail/send``: SendGrid's checks and error shape, one log entry per personalization.

In the ``ids`` log mode a personalization leaves only its ``custom_args`` delivery_id (see ``state``). Every
accepted personalization also queues its Event Webhook events (see ``events``; in the ids mode only while a url is set).

Authorization: any ``Bearer SG.…`` key is accepted; another form, or any key while the fault ``reject_api_key``
is on, gets SendGrid's 401 (M_AUTH). The drawn fault ``403`` answers as for an unverified sender (M_SENDER).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from notifier.emulator import faults as fk
from notifier.emulator.state import NO_ID, EmulatorState, delivery_id_of
from notifier.emulator.wire import STATE, bytes_answer, drop, json_answer, utc_now

MAX_BODY = 30 * 1024 * 1024
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_CATEGORIES = 10
MAX_CATEGORY_CHARS = 255
RATE_LIMIT = "600"

_valid_email = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+").fullmatch
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}

M_AUTH = "The provided authorization grant is invalid, expired, or revoked"
M_SENDER = ("The from address does not match a verified Sender Identity. Mail cannot be sent until this error is "
            "resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/sender-identity/ to see the Sender "
            "Identity requirements")
M_TOO_LARGE = "The JSON payload you have included in your request is too large. The maximum size is 30 MB."
M_JSON = "Bad Request: the request body is not valid JSON."
M_BODY = "The request body must be a JSON object."
M_PERSONALIZATIONS = "The personalizations field is required and must have at least one personalization."
M_PERSONALIZATIONS_MAX = "The personalizations field may not have more than 1000 items."
M_PERSONALIZATION = "Each personalization must be an object."
M_TO = ("The to array is required for all personalization objects, and must have at least one email object "
        "with a valid email address.")
M_ADDRESS = "Does not contain a valid address."
M_RECIPIENTS = ("The total number of recipients must be no more than 1000. This includes all recipients defined within "
                "the to, cc, and bcc parameters, across each object that you include in the personalizations array.")
M_UNIQUE = "Each email address in the personalization block should be unique between to, cc, and bcc."
M_FROM = ("The from object must be provided for every email send. It is an object that requires the email parameter, "
          "but may also contain a name parameter.")
M_FROM_EMAIL = "The from email does not contain a valid address."
M_SUBJECT = ("The subject is required. You can get around this requirement if you use a template with a subject "
             "defined or if every personalization has a subject defined.")
M_CONTENT = ("Unless a valid template_id is provided, the content parameter is required. There must be at least one "
             "defined content block. We typically suggest both text/plain and text/html blocks are included, but only "
             "one block is required.")
M_CONTENT_TYPE = "The content type must be a string at least one character in length."
M_CONTENT_VALUE = "The content value must be a string at least one character in length."
M_PLAIN_FIRST = "If present, text/plain content must be first, followed by any other content."
M_CUSTOM_ARGS_SIZE = "The custom_args (top level and personalization merged) exceed the maximum size of 10000 bytes."
M_OBJECT = "Invalid type. Expected: object, given: {}."
M_STRING = "Invalid type. Expected: string, given: {}."
M_CATEGORIES = "Too many categories. A maximum of 10 categories may be specified."
M_CATEGORY = "A category must be a string of at most 255 characters."
M_ASM = "The asm group_id must be an integer."

_FAULT_BODIES = {
    fk.RATE_LIMITED: (429, "too many requests"),
    fk.INTERNAL: (500, "An internal server error occurred."),
    fk.UNAVAILABLE: (503, "Service Unavailable"),
}


def _errors(*problems: tuple[str, str | None]) -> bytes:
    return json.dumps({"errors": [{"message": m, "field": f, "help": None} for m, f in problems]}).encode()


_UNAUTHORIZED = _errors((M_AUTH, None))
_TOO_LARGE = _errors((M_TOO_LARGE, None))
_NOT_JSON = _errors((M_JSON, None))
_FAULTS = {kind: (status, _errors((message, None))) for kind, (status, message) in _FAULT_BODIES.items()}
_FAULTS[fk.FORBIDDEN] = (403, _errors((M_SENDER, "from")))

Problem = Callable[[str, str | None], None]


def _type_name(value: Any) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), "unknown")


@dataclass(slots=True)
class _Common:
    """The top-level parts of a mail every personalization shares."""

    from_email: str | None
    subject: str | None
    template_id: str | None
    text: str | None
    html: str | None
    content_types: list[str]
    custom_args: dict[str, Any]
    headers: dict[str, Any]
    categories: list[str]
    asm: Any


def _string_map(value: Any, field: str, bad: Problem) -> dict[str, Any]:
    """An object whose values must all be strings (headers, custom_args, substitutions)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        bad(M_OBJECT.format(_type_name(value)), field)
        return {}
    for key, item in value.items():
        if type(item) is not str:
            bad(M_STRING.format(_type_name(item)), f"{field}.{key}")
    return value


def _args_size_ok(args: dict[str, Any]) -> bool:
    return len(json.dumps(args, ensure_ascii=False, separators=(",", ":")).encode()) <= MAX_CUSTOM_ARGS_BYTES


def _content(body: dict[str, Any], has_template: bool, bad: Problem) -> tuple[str | None, str | None, list[str]]:
    content = body.get("content")
    if content is None and has_template:
        return None, None, []
    if not isinstance(content, list) or not content:
        bad(M_CONTENT, "content")
        return None, None, []
    text = html = None
    types: list[str] = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        value = block.get("value") if isinstance(block, dict) else None
        if not isinstance(kind, str) or not kind:
            bad(M_CONTENT_TYPE, f"content.{i}.type")
        if not isinstance(value, str) or not value:
            bad(M_CONTENT_VALUE, f"content.{i}.value")
        if kind == "text/plain":
            if i:
                bad(M_PLAIN_FIRST, f"content.{i}.type")
            text = value
        elif kind == "text/html":
            html = value
        types.append(kind)
    return text, html, types


def _common(body: dict[str, Any], bad: Problem) -> _Common:
    """Check the top-level fields of a mail."""
    sender = body.get("from")
    from_email = sender.get("email") if isinstance(sender, dict) else None
    if not isinstance(sender, dict) or from_email is None:
        bad(M_FROM, "from.email")
    elif not isinstance(from_email, str) or not _valid_email(from_email):
        bad(M_FROM_EMAIL, "from.email")
    subject = body.get("subject")
    if subject is not None and not isinstance(subject, str):
        bad(M_STRING.format(_type_name(subject)), "subject")
        subject = None
    template_id = body.get("template_id")
    text, html, types = _content(body, bool(template_id), bad)
    custom_args = _string_map(body.get("custom_args"), "custom_args", bad)
    if custom_args and not _args_size_ok(custom_args):
        bad(M_CUSTOM_ARGS_SIZE, "custom_args")
    categories = body.get("categories") or []
    if not isinstance(categories, list) or len(categories) > MAX_CATEGORIES:
        bad(M_CATEGORIES, "categories")
        categories = []
    for i, category in enumerate(categories):
        if not isinstance(category, str) or len(category) > MAX_CATEGORY_CHARS:
            bad(M_CATEGORY, f"categories.{i}")
    asm = body.get("asm")
    if asm is not None and not (isinstance(asm, dict) and type(asm.get("group_id")) is int):
        bad(M_ASM, "asm.group_id")
    headers = _string_map(body.get("headers"), "headers", bad)
    return _Common(from_email, subject or None, template_id, text, html, types, custom_args, headers, categories, asm)


def _addresses(items: Any, field: str, bad: Problem) -> list[str]:
    if not isinstance(items, list):
        bad(M_TO, field)
        return []
    out = []
    for j, item in enumerate(items):
        email = item.get("email") if isinstance(item, dict) else None
        if type(email) is not str or not _valid_email(email):
            bad(M_ADDRESS, f"{field}.{j}.email")
        else:
            out.append(email)
    return out


def _entry(i: int, p: Any, common: _Common, bad: Problem, full: bool = True,
           ) -> tuple[dict[str, Any] | None, int, bool, int] | None:
    """Check one personalization: its log entry (``full`` only), recipients, whether it has a subject, its id.

    None when it is not an object. Without ``full`` nothing is built that only the log would read (the entry, the
    merged headers, the text and html with substitutions), so the ids log mode costs only the checks.
    """
    if not isinstance(p, dict):
        bad(M_PERSONALIZATION, f"personalizations.{i}")
        return None
    to = p.get("to")
    if not isinstance(to, list) or not to:
        bad(M_TO, f"personalizations.{i}.to")
        to = []
    emails = _addresses(to, f"personalizations.{i}.to", bad)
    count, everyone = len(to), emails
    for kind in ("cc", "bcc"):
        if kind in p:
            extra = _addresses(p[kind], f"personalizations.{i}.{kind}", bad)
            count += len(extra)
            everyone = everyone + extra
    if count > 1 and len({e.lower() for e in everyone}) != len(everyone):
        bad(M_UNIQUE, f"personalizations.{i}")
    subject = p.get("subject")
    if subject is not None and type(subject) is not str:
        bad(M_STRING.format(_type_name(subject)), f"personalizations.{i}.subject")
        subject = None
    subject, text, html = subject or common.subject, common.text, common.html
    args, headers = common.custom_args, common.headers
    if "custom_args" in p:
        args = {**args, **_string_map(p["custom_args"], f"personalizations.{i}.custom_args", bad)}
        if not _args_size_ok(args):
            bad(M_CUSTOM_ARGS_SIZE, f"personalizations.{i}.custom_args")
    if "headers" in p:
        own = _string_map(p["headers"], f"personalizations.{i}.headers", bad)
        headers = {**headers, **own} if full else headers
    if "substitutions" in p:
        for key, value in _string_map(p["substitutions"], f"personalizations.{i}.substitutions", bad).items():
            if type(value) is str and type(key) is str:
                subject = subject.replace(key, value) if subject else subject
                if full:
                    text = text.replace(key, value) if text else text
                    html = html.replace(key, value) if html else html
    if not full:
        return None, count, bool(subject), delivery_id_of(args.get("delivery_id"))
    entry = {"to": emails, "subject": subject, "custom_args": args, "categories": common.categories,
             "headers": headers, "asm": common.asm, "content_types": common.content_types, "text": text,
             "html": html, "from": common.from_email, "template_id": common.template_id,
             "dynamic_template_data": p.get("dynamic_template_data")}
    return entry, count, bool(subject), NO_ID


Problems = list[tuple[str, str | None]]


def _read(body: Any, full: bool) -> tuple[list[dict[str, Any]], list[int], Problems]:
    """SendGrid's checks of a mail/send body, with the log entries (``full``) or the ids, per personalization."""
    problems: Problems = []

    def bad(message: str, field: str | None) -> None:
        problems.append((message, field))

    if not isinstance(body, dict):
        return [], [], [(M_BODY, None)]
    common = _common(body, bad)
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        bad(M_PERSONALIZATIONS, "personalizations")
        return [], [], problems
    if len(personalizations) > MAX_PERSONALIZATIONS:
        bad(M_PERSONALIZATIONS_MAX, "personalizations")
        return [], [], problems
    entries: list[dict[str, Any]] = []
    ids: list[int] = []
    recipients, missing_subject = 0, False
    for i, p in enumerate(personalizations):
        checked = _entry(i, p, common, bad, full)
        if checked is None:
            continue
        entry, count, has_subject, delivery_id = checked
        recipients += count
        missing_subject = missing_subject or not has_subject
        if entry is not None:
            entries.append(entry)
        else:
            ids.append(delivery_id)
    if recipients > MAX_RECIPIENTS:
        bad(M_RECIPIENTS, "personalizations")
    if missing_subject and not common.template_id:
        bad(M_SUBJECT, "subject")
    return entries, ids, problems


def read_mail(body: Any) -> tuple[list[dict[str, Any]], Problems]:
    """SendGrid's checks of a mail/send body: the log entries (one per personalization) and every problem found."""
    entries, _, problems = _read(body, full=True)
    return entries, problems


def read_mail_ids(body: Any) -> tuple[list[int], Problems]:
    """The same checks for the ids log mode: each personalization's delivery_id (or NO_ID) and every problem."""
    _, ids, problems = _read(body, full=False)
    return ids, problems


def _fault(request: web.Request, state: EmulatorState, kind: str, retry_after: int) -> web.Response:
    state.injected_fault("sendgrid", kind)
    state.count("sendgrid", kind)
    if kind == fk.DROP:
        return drop(request)
    status, body = _FAULTS[kind]
    headers = {"Retry-After": str(retry_after)} if kind in (fk.RATE_LIMITED, fk.UNAVAILABLE) else {}
    if kind == fk.RATE_LIMITED:
        headers.update({"X-RateLimit-Limit": RATE_LIMIT, "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": str(int(time.time()) + retry_after)})
    return bytes_answer(body, status, headers)


async def send_mail(request: web.Request) -> web.Response:
    """``POST /v3/mail/send``: 202 and ``X-Message-Id``, or SendGrid's error for what is wrong."""
    state = request.app[STATE]
    faults = state.faults.providers["sendgrid"]
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.reject_api_key:
        state.injected_fault("sendgrid", "reject_api_key")
    if faults.reject_api_key or not request.headers.get("Authorization", "").startswith("Bearer SG."):
        state.count("sendgrid", 401)
        return bytes_answer(_UNAUTHORIZED, 401)
    if (request.content_length or 0) > MAX_BODY:
        state.count("sendgrid", 413)
        return bytes_answer(_TOO_LARGE, 413)
    kind = state.faults.draw("sendgrid")
    if kind is not None:
        return _fault(request, state, kind, faults.retry_after)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        state.count("sendgrid", 413)
        return bytes_answer(_TOO_LARGE, 413)
    try:
        body = json.loads(raw)
    except ValueError:
        state.count("sendgrid", 400)
        return bytes_answer(_NOT_JSON, 400)
    events = state.events.generating  # the ids mode reads whole entries only when events are to be posted
    if state.ids_only and not events:
        ids, problems = read_mail_ids(body)
    else:
        entries, problems = read_mail(body)
    if problems:
        state.count("sendgrid", 400)
        return json_answer({"errors": [{"message": m, "field": f, "help": None} for m, f in problems]}, 400)
    message_id = secrets.token_urlsafe(16)
    if state.ids_only:
        state.email_ids.extend(ids if not events else (delivery_id_of(e["custom_args"].get("delivery_id"))
                                                       for e in entries))
    else:
        at = utc_now()
        for entry in entries:
            entry["message_id"] = message_id
            entry["at"] = at
        state.emails.extend(entries)
    if events:
        state.events.accept(message_id, entries)
    state.count("sendgrid", 202)
    return web.Response(status=202, headers={"X-Message-Id": message_id})
