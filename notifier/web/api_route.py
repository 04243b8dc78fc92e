"""What every route of the JSON API under ``/api/v1`` shares (``studio_api``, ``team_api``): :class:`ApiRoute` finds
who the bearer token speaks for (``actions.bearer``: a person's token, or the service token) and checks the route's
capability (``team.roles``) before a byte of the body is read, reads the body within the endpoint's cap, acts as
that person in the audit log, and answers every refusal as JSON: ``{"error": "..."}`` with its status, and 422
``{"error", "problems": [{"file", "line", "field", "message"}]}`` for input that is wrong, each problem located.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from notifier.errors import CampaignError, CampaignStateError, NotFound, Problem, RequestRefused, UserError
from notifier.ledger import audit
from notifier.team.roles import Role, capability_of, refuse_unless
from notifier.web.actions import Caller, bearer
from notifier.web.requests import client_address, read_body
from notifier.web.studio_models import Refusal

MAX_JSON = 256 * 1024  # a starter form, words, seeds, a test send: what an endpoint reads unless it says


def _bearer(request: Request) -> Caller:
    """``actions.bearer``, with this API's name in the answer when no token is configured."""
    try:
        return bearer(request)
    except RequestRefused as exc:
        if exc.status == 503:
            raise RequestRefused(503, "NOTIFIER_API_TOKEN is not set and the ledger has no team (whose people "
                                      "make personal tokens): the studio's API (/api/v1) is off") from None
        raise


def problems_json(problems: list[Problem] | tuple[Problem, ...]) -> list[dict[str, Any]]:
    return [{"file": p.file, "line": p.line, "field": p.field, "message": p.message} for p in problems]


def _refusal(exc: Exception) -> JSONResponse:
    """The JSON answer of a refusal (anything else is a bug, and the application's to answer)."""
    if isinstance(exc, RequestValidationError):
        found = [Problem("request", None, _field(e.get("loc", ())), str(e.get("msg", "invalid"))) for e in exc.errors()]
        return JSONResponse({"error": "the request is not what this endpoint takes",
                             "problems": problems_json(found[:50])}, status_code=422)
    if isinstance(exc, CampaignError):
        return JSONResponse({"error": f"{len(exc.problems)} problem(s): {exc.problems[0]}",
                             "problems": problems_json(exc.problems)}, status_code=422)
    if isinstance(exc, RequestRefused):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, CampaignStateError) else 422
    body: dict[str, Any] = {"error": str(exc)}
    if status == 422:
        body["problems"] = []
    return JSONResponse(body, status_code=status)


def _field(loc: Any) -> str | None:
    """``("body", "deadlines", 0, "at")`` -> ``deadlines[0].at``, the form's own naming (None: the whole body)."""
    out = ""
    for part in list(loc)[1:] if loc and loc[0] in ("body", "query", "path") else list(loc):
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or None


class ApiRoute(APIRoute):
    """Every route of the API: the token first, the body read within the endpoint's cap (``body_limit``; 0: the
    endpoint streams it), and every refusal answered as JSON."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handle = super().get_route_handler()
        limit = getattr(self.endpoint, "body_limit", MAX_JSON)
        can = capability_of(self.endpoint)

        async def route(request: Request) -> Any:
            try:
                if can is None:  # public (team.roles.PUBLIC): proven by what it carries
                    caller = Caller(Role.VIEWER, audit.Actor("anonymous", "-", client_address(request)))
                else:
                    caller = await run_in_threadpool(_bearer, request)
                    refuse_unless(caller.role, can)
                if limit and request.method in ("POST", "PUT"):
                    request._body = await read_body(request, limit)  # what FastAPI reads next
                with audit.acting(caller.actor):
                    request.state.caller = caller
                    return await handle(request)
            except (UserError, RequestValidationError) as exc:
                return _refusal(exc)

        return route


def capped(limit: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The endpoint's body cap, in bytes, for ApiRoute (0: it reads its own body as a stream)."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        endpoint.body_limit = limit  # type: ignore[attr-defined]
        return endpoint
    return mark


REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {"model": Refusal, "description": why} for status, why in (
        (401, "no or a wrong bearer token"), (403, "the token's person has a role that cannot do this"),
        (404, "no such campaign, locale or upload"),
        (409, "the campaign's state refuses it"), (413, "the body is too big"),
        (422, "wrong input, each problem located"), (503, "NOTIFIER_API_TOKEN is not set"))}
# In the OpenAPI document only (auto_error=False): ApiRoute checks the token, before the body is read.
DOCUMENTED_BEARER = HTTPBearer(auto_error=False, scheme_name="NOTIFIER_API_TOKEN",
                               description="Authorization: Bearer <NOTIFIER_API_TOKEN>")


async def raw_body(request: Request) -> bytes:
    return await request.body()  # read (and capped) by ApiRoute
