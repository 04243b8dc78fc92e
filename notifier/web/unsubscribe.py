"""``GET`` and ``POST /u/{token}``: one-click unsubscribe (RFC 8058).

A mail client's one-click ``POST`` with the body ``List-Unsubscribe=One-Click`` unsubscribes at once and answers 200
with no redirect. A ``GET`` (a person who clicked the link, or a scanner that follows every link) changes nothing:
it shows a small page in the recipient's language with a button that makes that same ``POST``. Both pages say what
the link stops (``feedback.opt_out_of``): all marketing, or every further message of that one service campaign,
named as the recipient's catalog names it. Links of messages sent before this path existed
(``/unsubscribe/{token}``) keep working.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from notifier.errors import NotifierError, RequestRefused
from notifier.feedback import OptOut, Unsubscribed, opt_out_of, unsubscribe
from notifier.i18n import load_translations, negotiate
from notifier.ledger.db import transaction
from notifier.links import verify_unsubscribe_token
from notifier.web.locales import DOMAIN, TEMPLATES, UI_LOCALES
from notifier.web.locales import HERE as LOCALES
from notifier.web.requests import Web, page_csp, read_body, web_of

MAX_FORM_BYTES = 4096
router = APIRouter(tags=["unsubscribe"])
_PAGES: dict[int | str, dict[str, Any]] = {
    404: {"description": "the link is not valid or has expired", "content": {"text/html": {}}},
}


def _style_source() -> str:
    """The CSP source of the pages' one inline ``<style>`` (page.html's): its hash, which browsers compute over the
    exact text between the tags."""
    style = re.search(r"<style>(.*?)</style>", (TEMPLATES / "page.html").read_text(encoding="utf-8"), re.DOTALL)
    if style is None:
        return "'none'"
    return f"'sha256-{base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()}'"


CSP = page_csp(style_src=_style_source())  # and the app's other page headers: no framing, no Referer


@lru_cache(maxsize=len(UI_LOCALES))
def _env(locale: str) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(load_translations(LOCALES, locale, DOMAIN), newstyle=True)  # type: ignore[attr-defined]
    return env


def page(name: str, locale: str, status: int = 200, **context: Any) -> HTMLResponse:
    """One of the pages in the UI's locale nearest to ``locale``."""
    lang = negotiate(locale, UI_LOCALES, "en")
    html = _env(lang).get_template(name).render(lang=lang, **context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store",
                                                           "Content-Security-Policy": CSP})


def _accepted(request: Request) -> str:
    """The first language of Accept-Language, for pages whose link names nobody."""
    header = request.headers.get("accept-language", "")
    return header.split(",")[0].split(";")[0].strip()[:35] or "en"


def delivery_of(web: Web, token: str) -> int | None:
    """The delivery a genuine, unexpired unsubscribe token names (current and previous keys), else None."""
    return verify_unsubscribe_token(web.settings.secret_keys, token, today=web.now().date())


async def unsubscribe_now(web: Web, delivery_id: int, source: str) -> Unsubscribed | None:
    """``feedback.unsubscribe`` in a transaction of its own, off the event loop: the link's and the mail's."""
    def apply() -> Unsubscribed | None:
        with transaction(web.sessions) as s:
            return unsubscribe(s, delivery_id, web.now(), source=source)

    return await run_in_threadpool(apply)


def _opt_out(web: Web, delivery_id: int) -> OptOut | None:
    with web.sessions() as s:
        return opt_out_of(s, delivery_id)


def campaign_name(web: Web, opt_out: OptOut) -> str:
    """The campaign's name in the language its message was sent in, when the campaign's catalog translates it (its
    msgid is the name as the campaign file writes it), else as written."""
    if not opt_out.locale:
        return opt_out.campaign_name
    try:
        _templates, locales = web.settings.copy_dirs(opt_out.campaign_id)
        translations = load_translations(locales, opt_out.locale, opt_out.campaign_id)
    except (NotifierError, OSError, ValueError):  # no catalog here for it: the name as written
        return opt_out.campaign_name
    return translations.gettext(opt_out.campaign_name)


def opt_out_page(web: Web, name: str, opt_out: OptOut, fallback_locale: str) -> HTMLResponse:
    """The confirmation or the done page of ``opt_out``: about marketing, or about its one campaign by name."""
    campaign = None if opt_out.marketing else campaign_name(web, opt_out)
    return page(name, opt_out.locale or fallback_locale, campaign=campaign)


@router.get("/u/{token}", response_class=HTMLResponse, responses=_PAGES)
@router.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def confirm(token: str, request: Request) -> HTMLResponse:
    """A page with a button that unsubscribes; following the link alone changes nothing."""
    web = web_of(request)
    delivery_id = delivery_of(web, token)
    opt_out = await run_in_threadpool(_opt_out, web, delivery_id) if delivery_id is not None else None
    if opt_out is None:
        return page("unsubscribe_invalid.html", _accepted(request), 404)
    return await run_in_threadpool(opt_out_page, web, "unsubscribe_confirm.html", opt_out, _accepted(request))


@router.post("/u/{token}", response_class=HTMLResponse, responses={
    **_PAGES, 400: {"description": "the body is not List-Unsubscribe=One-Click"}, 413: {"description": "too big"}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": {"type": "object", "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}},
                   "required": ["List-Unsubscribe"]}}}}})
@router.post("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
async def one_click(token: str, request: Request) -> HTMLResponse:
    """RFC 8058 one-click: unsubscribe now, answer 200 (no redirect)."""
    web = web_of(request)
    body = await read_body(request, MAX_FORM_BYTES)
    form = parse_qs(body.decode("latin-1"), keep_blank_values=True)
    if form.get("List-Unsubscribe") != ["One-Click"]:
        raise RequestRefused(400, "expected the body List-Unsubscribe=One-Click (RFC 8058)")
    delivery_id = delivery_of(web, token)
    if delivery_id is None:
        return page("unsubscribe_invalid.html", _accepted(request), 404)
    done = await unsubscribe_now(web, delivery_id, "unsubscribe-link")
    if done is None:
        return page("unsubscribe_invalid.html", _accepted(request), 404)
    return await run_in_threadpool(opt_out_page, web, "unsubscribe_done.html", done.opt_out, _accepted(request))
