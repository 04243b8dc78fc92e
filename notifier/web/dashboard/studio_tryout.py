"""The studio's pages that try a campaign before it is real: the audience upload (a file, its columns mapped, the
import's progress, the rejected rows), the dry run and the fast-forward into a preview outbox, the seed list and a
test send. Same rules as ``studio.py``: a form, one call to ``notifier.studio.service``, a page.
"""

from __future__ import annotations

import json
import shutil
import uuid
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from notifier.errors import CampaignError, NotFound, RequestRefused, UserError
from notifier.studio import service
from notifier.team.roles import Can, needs
from notifier.web.dashboard import studio_forms as forms
from notifier.web.dashboard.access import DashboardRoute, identity
from notifier.web.dashboard.studio import HEAD, MAX_AUDIENCE_BYTES, NO_STORE, _call, _form, _id, _page, _problems
from notifier.web.requests import web_of

router = APIRouter(include_in_schema=False, route_class=DashboardRoute)


# --- 5. the audience --------------------------------------------------------------------------------------------


def _spool_dir(request: Request) -> Any:
    folder = web_of(request).settings.studio_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _spooled(request: Request, spool: str) -> Any:
    try:
        name = str(uuid.UUID(spool))
    except ValueError:
        raise NotFound("no such upload") from None
    path = _spool_dir(request) / name
    if not path.is_file():
        raise NotFound("no such upload: choose the file again")
    return path


@router.get("/campaigns/{campaign_id}/audience")
@needs(Can.EDIT)
async def audience_page(request: Request, campaign_id: str) -> HTMLResponse:
    return await _page(request, "studio_audience.html", _id(campaign_id), step="file", problems=[])


@router.post("/campaigns/{campaign_id}/audience")
@needs(Can.EDIT)
async def audience_file(request: Request, campaign_id: str) -> Any:
    """Step 1: the file, kept on disk; step 2 shows its columns to map."""
    posted = await _form(request, MAX_AUDIENCE_BYTES)
    upload = posted.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise RequestRefused(400, "choose a CSV or JSON Lines file")
    spool = str(uuid.uuid4())
    path = _spool_dir(request) / spool

    def keep() -> None:
        with path.open("wb") as out:
            shutil.copyfileobj(upload.file, out, 1024 * 1024)

    await run_in_threadpool(keep)
    name = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:200]
    return RedirectResponse(f"/campaigns/{quote(_id(campaign_id))}/audience/{spool}?name={quote(name)}",
                            status_code=303)


async def _sniffed(request: Request, path: Any, name: str, mapping: dict[str, str] | None) -> Any:
    def head() -> bytes:
        with path.open("rb") as f:
            return f.read(HEAD)

    return await _call(request, service.sniff_upload, await run_in_threadpool(head), name, mapping)


@router.get("/campaigns/{campaign_id}/audience/{spool}")
@needs(Can.EDIT)
async def mapping_page(request: Request, campaign_id: str, spool: str, name: str = "audience.csv") -> Any:
    path = _spooled(request, spool)
    sniffed = await _sniffed(request, path, name, None)
    chosen = {c: sniffed.suggestions.get(c) or "" for c in sniffed.columns}
    return await _page(request, "studio_audience.html", _id(campaign_id), step="map", spool=spool, file_name=name,
                       sniffed=sniffed, chosen=chosen, problems=[])


def _mapping(posted: FormData, columns: Any) -> dict[str, str]:
    return {c: str(posted.get(f"map.{i}") or "") for i, c in enumerate(columns)}


@router.post("/campaigns/{campaign_id}/audience/{spool}")
@needs(Can.EDIT)
async def start_import(request: Request, campaign_id: str, spool: str) -> Any:
    posted = await _form(request)
    path = _spooled(request, spool)
    name = str(posted.get("name") or "audience.csv")[:200]
    first = await _sniffed(request, path, name, None)
    mapping = _mapping(posted, first.columns)
    if posted.get("action") == "sample":  # the rows again with this mapping (what studio.js does as you choose)
        sniffed = await _sniffed(request, path, name, mapping)
        if request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse({"sample": list(sniffed.sample), "problems": list(sniffed.problems)}, headers=NO_STORE)
        return await _page(request, "studio_audience.html", _id(campaign_id), step="map", spool=spool, file_name=name,
                           sniffed=sniffed, chosen=mapping, problems=[])
    upload_id = await _call(request, service.start_upload, path, name, first.format, mapping)
    return RedirectResponse(f"/campaigns/{quote(_id(campaign_id))}/audience/uploads/{quote(upload_id)}",
                            status_code=303)


def _status_json(status: Any) -> dict[str, Any]:
    return {"state": status.state, "percent": status.percent, "accepted": status.accepted,
            "rejected": status.rejected, "guessed": status.guessed, "error": status.error,
            "read_bytes": status.read_bytes, "size_bytes": status.size_bytes}


@router.get("/campaigns/{campaign_id}/audience/uploads/{upload_id}")
@needs(Can.EDIT)
async def upload_page(request: Request, campaign_id: str, upload_id: str) -> Any:
    await run_in_threadpool(identity, request)
    status = await _call(request, service.upload_status, upload_id[:64])
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(_status_json(status), headers={"Cache-Control": "no-store"})
    return await _page(request, "studio_audience.html", _id(campaign_id), step="import", upload=status,
                       problems=[])


@router.get("/campaigns/{campaign_id}/audience/uploads/{upload_id}/rejects.csv")
@needs(Can.PERSONAL)
async def rejects(request: Request, campaign_id: str, upload_id: str) -> StreamingResponse:
    await run_in_threadpool(identity, request)
    rows = await _call(request, service.rejects_csv, upload_id[:64])
    return StreamingResponse(iter(list(rows)), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="rejected-{upload_id[:8]}.csv"',
                                      "Cache-Control": "no-store"})


# --- 6. try it --------------------------------------------------------------------------------------------------


@router.get("/campaigns/{campaign_id}/try")
@needs(Can.READ)
async def try_page(request: Request, campaign_id: str) -> HTMLResponse:
    return await _page(request, "studio_try.html", _id(campaign_id), dry=None, ff=None, problems=[])


@router.post("/campaigns/{campaign_id}/try")
@needs(Can.EDIT)
async def try_it(request: Request, campaign_id: str) -> HTMLResponse:
    posted = await _form(request)
    dry = ff = None
    try:
        if posted.get("action") == "fast-forward":
            ff = await _call(request, service.fast_forward, _id(campaign_id))
        else:
            dry = await _call(request, service.dry_run, _id(campaign_id))
    except CampaignError as exc:
        return await _page(request, "studio_try.html", campaign_id, 422, dry=None, ff=None,
                           problems=_problems(exc.problems))
    from notifier.studio.dryrun import SKIPPED

    return await _page(request, "studio_try.html", campaign_id, dry=dry, ff=ff, problems=[], skipped_words=SKIPPED,
                       outbox=_outbox_groups(ff) if ff is not None else [],
                       sends=await _send_words(request, campaign_id) if ff is not None else {})


async def _send_words(request: Request, campaign_id: str) -> dict[str, str]:
    """send key -> the send as people say it ("7 days before Price change")."""
    choices = await _call(request, service.preview_choices, campaign_id)
    return {s["send_key"]: s["words"] for s in choices["sends"]}


def _outbox_groups(ff: Any) -> list[dict[str, Any]]:
    """The preview outbox, one line per wave x locale x channel: how many, a subject, and one message to open."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for m in ff.messages:
        g = groups.setdefault((m.send_key, m.locale, m.channel), {
            "send_key": m.send_key, "locale": m.locale, "channel": m.channel, "subject": m.subject, "count": 0,
            "file": str(Path(m.path).relative_to(Path(ff.directory) / "outbox"))})
        g["count"] += 1
    return list(groups.values())


@router.get("/campaigns/{campaign_id}/try/outbox")
@needs(Can.PERSONAL)
async def outbox_message(request: Request, campaign_id: str, file: str) -> HTMLResponse:
    """One message of the last fast-forward's outbox, as the recipient gets it."""
    await run_in_threadpool(identity, request)
    folder = (web_of(request).settings.studio_dir / "fast-forward" / _id(campaign_id) / "outbox").resolve()
    path = (folder / file[:300]).resolve()
    if not path.is_relative_to(folder) or not path.is_file() or path.suffix not in (".eml", ".json"):
        raise NotFound("no such message in the preview outbox: fast-forward again")
    message = await run_in_threadpool(_read_message, path)
    return await _page(request, "studio_message.html", campaign_id, message=message)


def _read_message(path: Path) -> dict[str, Any]:
    """An outbox file as the page shows it: an email's subject, HTML and text, or a push's title and body."""
    if path.suffix == ".json":
        doc = json.loads(path.read_text(encoding="utf-8"))
        note = doc.get("notification") or doc.get("message", {}).get("notification") or {}
        return {"channel": "push", "title": note.get("title", ""), "body": note.get("body", "")}
    mail = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    html = mail.get_body(("html",))
    text = mail.get_body(("plain",))
    return {"channel": "email", "subject": str(mail["subject"] or ""), "sender": str(mail["from"] or ""),
            "html": html.get_content() if html is not None else "", "text": text.get_content() if text else ""}


# --- 7. test send -----------------------------------------------------------------------------------------------


async def _test_page(request: Request, campaign_id: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    seeds = await _call(request, service.seeds, campaign_id)
    choices = await _call(request, service.preview_choices, campaign_id)
    return await _page(request, "studio_test.html", campaign_id, status, seeds=seeds, choices=choices,
                       **{"problems": [], "results": None, "sent_as": {}, **ctx})


@router.get("/campaigns/{campaign_id}/test")
@needs(Can.PERSONAL)
async def test_page(request: Request, campaign_id: str) -> HTMLResponse:
    return await _test_page(request, _id(campaign_id))


@router.post("/campaigns/{campaign_id}/test")
@needs(Can.EDIT)
async def test_send(request: Request, campaign_id: str) -> HTMLResponse:
    posted = await _form(request)
    _id(campaign_id)
    try:
        if posted.get("action") == "seeds":
            await _call(request, service.set_seeds, campaign_id, forms.seeds_json(posted))
            return await _test_page(request, campaign_id, done="seeds")
        sent_as = {k: str(posted.get(k) or "")[:400] for k in ("locale", "send", "channel")}
        results = await _call(request, service.test_send, campaign_id, locale=sent_as["locale"],
                              send_key=sent_as["send"], channel=sent_as["channel"])
    except CampaignError as exc:
        return await _test_page(request, campaign_id, 422, problems=_problems(exc.problems))
    except UserError as exc:
        return await _test_page(request, campaign_id, 422, problems=_problems([exc]))
    return await _test_page(request, campaign_id, results=results, sent_as=sent_as)
