"""FCM HTTP v1 ``messages:send``: FCM's checks and its error shape, so firebase-admin raises its own exceptions.

Authorization: only access tokens the emulator's ``/token`` issued are accepted; another gets FCM's 401
UNAUTHENTICATED. The drawn faults ``401`` and ``403`` answer UNAUTHENTICATED and PERMISSION_DENIED (the service
account may not send for the project) even to a good token, as FCM does for every token of refused credentials.
In the ``ids`` log mode an accepted message leaves only its ``data`` delivery_id (see ``state``).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from notifier.emulator import faults as fk
from notifier.emulator.state import NO_ID, EmulatorState, delivery_id_of
from notifier.emulator.wire import STATE, bytes_answer, drop, utc_now

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"

# FCM errorCode → (HTTP status, google.rpc status, message), as the real service answers them.
ERRORS = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED", "Quota exceeded for sending messages."),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
}
_FAULT_CODES = {fk.RATE_LIMITED: "QUOTA_EXCEEDED", fk.INTERNAL: "INTERNAL", fk.UNAVAILABLE: "UNAVAILABLE"}
_RETRY_AFTER = {"QUOTA_EXCEEDED", "UNAVAILABLE"}

_valid_ttl = re.compile(r"\d+(\.\d{1,9})?s").fullmatch
_valid_topic = re.compile(r"[a-zA-Z0-9\-_.~%]+").fullmatch
_PRIORITIES = frozenset({"normal", "high", "NORMAL", "HIGH"})
_TARGETS = ("token", "fid", "topic", "condition")  # fid: firebase-admin 7.7+ deprecates token for it


def error_body(code: str, violations: list[tuple[str, str]] | None = None) -> tuple[int, bytes]:
    """The HTTP status and JSON body FCM answers for an errorCode, with field violations if any."""
    status, rpc_status, message = ERRORS[code]
    details: list[dict[str, Any]] = [{"@type": FCM_ERROR, "errorCode": code}]
    if violations:
        message = violations[0][1]
        details.append({"@type": BAD_REQUEST,
                        "fieldViolations": [{"field": f, "description": d} for f, d in violations]})
    return status, json.dumps({"error": {"code": status, "message": message, "status": rpc_status,
                                         "details": details}}).encode()


_UNAUTHENTICATED = json.dumps({"error": {
    "code": 401,
    "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
               "other valid authentication credential. See "
               "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    "status": "UNAUTHENTICATED"}}).encode()
_CANNED = {code: error_body(code) for code in ERRORS}


def _permission_denied(project: str) -> bytes:
    """FCM's 403 for a service account without ``cloudmessaging.messages.create`` (no FcmError errorCode)."""
    return json.dumps({"error": {
        "code": 403,
        "message": f"Permission 'cloudmessaging.messages.create' denied on resource "
                   f"'//cloudresourcemanager.googleapis.com/projects/{project}' (or it may not exist).",
        "status": "PERMISSION_DENIED",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "IAM_PERMISSION_DENIED",
                     "domain": "cloudresourcemanager.googleapis.com",
                     "metadata": {"permission": "cloudmessaging.messages.create"}}]}}).encode()


def _string_map(value: Any, field: str, out: list[tuple[str, str]]) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        out.append((field, f"Invalid value at '{field}': expected a map of strings"))
        return
    for key, item in value.items():
        if type(item) is not str:
            out.append((f"{field}[{key}]", f"Invalid value at '{field}[{key}]' (TYPE_STRING), {json.dumps(item)}"))


def _check_android(android: Any, out: list[tuple[str, str]]) -> None:
    if not isinstance(android, dict):
        out.append(("message.android", "Invalid value at 'message.android': expected an object"))
        return
    ttl = android.get("ttl")
    if ttl is not None and (type(ttl) is not str or not _valid_ttl(ttl)):
        out.append(("message.android.ttl",
                    f"Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration), "
                    f"{json.dumps(ttl)}"))
    priority = android.get("priority")
    if priority is not None and priority not in _PRIORITIES:
        out.append(("message.android.priority",
                    f"Invalid value at 'message.android.priority' (TYPE_ENUM), {json.dumps(priority)}"))
    _string_map(android.get("data"), "message.android.data", out)


def _check_webpush_link(options: Any, out: list[tuple[str, str]]) -> None:
    """FCM's web SDK opens ``webpush.fcm_options.link`` on a click, and FCM requires HTTPS of it."""
    link = options.get("link") if isinstance(options, dict) else None
    if link is not None and (type(link) is not str or not link.startswith("https://")):
        out.append(("message.webpush.fcm_options.link",
                    f"Invalid value at 'message.webpush.fcm_options.link' ({json.dumps(link)}): HTTPS is required"))


def check_message(message: Any) -> list[tuple[str, str]]:
    """FCM's checks of a v1 message: (field, description) for every violation."""
    if not isinstance(message, dict):
        return [("message", "Invalid value at 'message': expected an object")]
    out: list[tuple[str, str]] = []
    targets = [t for t in _TARGETS if t in message]
    if len(targets) != 1:
        out.append(("message", "Exactly one of token, fid, topic or condition must be specified."))
    for target in targets:
        value = message[target]
        if type(value) is not str or not value:
            out.append((f"message.{target}", f"Invalid value at 'message.{target}': expected a non-empty string"))
        elif target == "topic" and not _valid_topic(value):
            out.append(("message.topic", "Invalid topic name."))
    _string_map(message.get("data"), "message.data", out)
    if "android" in message:
        _check_android(message["android"], out)
    apns = message.get("apns")
    if apns is not None:
        _string_map(apns.get("headers") if isinstance(apns, dict) else apns, "message.apns.headers", out)
    webpush = message.get("webpush")
    if isinstance(webpush, dict):
        _string_map(webpush.get("headers"), "message.webpush.headers", out)
        _string_map(webpush.get("data"), "message.webpush.data", out)
        _check_webpush_link(webpush.get("fcm_options"), out)
    return out


def _error(state: EmulatorState, code: str, retry_after: int, violations: list[tuple[str, str]] | None = None,
           ) -> web.Response:
    status, body = error_body(code, violations) if violations else _CANNED[code]
    state.count("fcm", status)
    headers = {"Retry-After": str(retry_after)} if code in _RETRY_AFTER else None
    return bytes_answer(body, status, headers)


def _fault(request: web.Request, state: EmulatorState, kind: str, retry_after: int) -> web.Response:
    """The answer to a request that drew a fault: cut off, refused credentials, or one of FCM's errors."""
    state.injected_fault("fcm", kind)
    if kind == fk.DROP:
        state.count("fcm", kind)
        return drop(request)
    if kind == fk.UNAUTHORIZED:
        state.count("fcm", 401)
        return bytes_answer(_UNAUTHENTICATED, 401)
    if kind == fk.FORBIDDEN:
        state.count("fcm", 403)
        return bytes_answer(_permission_denied(request.match_info["project"]), 403)
    return _error(state, _FAULT_CODES[kind], retry_after)


async def send_message(request: web.Request) -> web.Response:
    """``POST /v1/projects/{project}/messages:send``: the message name, or FCM's error."""
    state = request.app[STATE]
    faults = state.faults.providers["fcm"]
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or auth[7:] not in state.access_tokens:
        state.count("fcm", 401)
        return bytes_answer(_UNAUTHENTICATED, 401)
    kind = state.faults.draw("fcm")
    if kind is not None:
        return _fault(request, state, kind, faults.retry_after)
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _error(state, "INVALID_ARGUMENT", 0, [("", "Invalid JSON payload received.")])
    message = body.get("message") if isinstance(body, dict) else None
    violations = check_message(message)
    if violations:
        return _error(state, "INVALID_ARGUMENT", 0, violations)
    token = message.get("token") or message.get("fid")
    if token is not None and token in state.faults.token_faults:
        code = state.faults.token_faults[token]
        state.injected_fault("fcm", code.lower())
        return _error(state, code, faults.retry_after)
    project = request.match_info["project"]
    if body.get("validate_only") is True:
        name = f"projects/{project}/messages/fake_message_id"
    else:
        name = f"projects/{project}/messages/0:{next(state.sequence):016d}%emulator"
        if state.ids_only:
            data = message.get("data")
            state.push_ids.append(delivery_id_of(data.get("delivery_id")) if isinstance(data, dict) else NO_ID)
        else:
            state.pushes.append({"name": name, "token": message.get("token"), "fid": message.get("fid"),
                                 "topic": message.get("topic"),
                                 "condition": message.get("condition"), "notification": message.get("notification"),
                                 "data": message.get("data"), "android": message.get("android"),
                                 "apns": message.get("apns"), "webpush": message.get("webpush"),
                                 "fcm_options": message.get("fcm_options"), "at": utc_now()})
    state.count("fcm", 200)
    return bytes_answer(json.dumps({"name": name}).encode(), 200)
