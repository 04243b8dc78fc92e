"""The studio's JSON API under ``/api/v1``: every studio action for automation, through the same
``notifier.studio.service`` the dashboard's pages call. A person's bearer token, or ``NOTIFIER_API_TOKEN``; the
token and the route's capability are checked by ``api_route.ApiRoute``.

Each route checks the token before it reads a byte of the body, and reads at most its cap (a campaign file
256 KiB, a catalog 1 MiB; an audience file streams to a spool file, up to 2 GiB). Every refusal is JSON:
``{"error": "..."}`` with 401, 404 (unknown campaign, locale or upload), 409 (the campaign's state refuses it),
413 (too big) or 503 (no token configured), and 422 ``{"error", "problems": [{"file", "line", "field",
"message"}]}`` for input that is wrong, with each problem located; never a 500 for what a client sent.
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Security
from fastapi.responses import Response, StreamingResponse
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool

from notifier.errors import CampaignError, CampaignStateError, NotFound, Problem, RequestRefused
from notifier.studio import service
from notifier.team.roles import Can, needs, refuse_unless
from notifier.web.api_route import (
    DOCUMENTED_BEARER,
    MAX_JSON,
    REFUSALS,
    ApiRoute,
    capped,
    problems_json,
    raw_body,
)
from notifier.web.requests import Web, web_of
from notifier.web.studio_models import (
    CampaignOut,
    CheckOut,
    EntryOut,
    GateOut,
    PreviewOut,
    SavedOut,
    SeedModel,
    SniffOut,
    StarterIn,
    TestSendIn,
    TranslationCheckIn,
    TranslationCheckOut,
    UploadOut,
)

MAX_FILE = 256 * 1024  # a campaign's YAML (views.MAX_FILE_BYTES)
MAX_CATALOG = 1024 * 1024  # a PO or XLIFF file, or a locale's translations as JSON
MAX_HEAD = 256 * 1024  # the head of an audience file to sniff
MAX_UPLOAD = 2 * 1024**3  # an audience file, spooled to disk as it comes


router = APIRouter(prefix="/api/v1", tags=["studio"], route_class=ApiRoute, responses=REFUSALS,
                   dependencies=[Security(DOCUMENTED_BEARER)])


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CampaignError([Problem(what, None, None, f"not UTF-8 text (byte {exc.start})")]) from None


def _body_doc(media: str, description: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": description,
                            "content": {media: {"schema": {"type": "string"}}}}}


IF_MATCH = Header(None, max_length=40, description="the version this change was made from (as GET gave it, e.g. "
                   '"3"): a newer version refuses the change with 409 instead of being overwritten')


def _base(if_match: str | None) -> int | None:
    """The version an ``If-Match`` names (a bare or quoted number), None without one."""
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 9:
        raise RequestRefused(400, "If-Match: expected a campaign version number such as \"3\"")
    return int(value)


def _saved(saved: service.Saved) -> SavedOut:
    return SavedOut(id=saved.campaign_id, version=saved.version, problems=problems_json(saved.problems),
                    warnings=problems_json(saved.warnings))


# --- campaigns --------------------------------------------------------------------------------------------------


@router.get("/starters")
@needs(Can.READ)
def get_starters() -> dict[str, dict[str, Any]]:
    """The named starters, as forms to adapt and POST to /api/v1/campaigns."""
    return service.starters()


@router.post("/campaigns/check", response_model=CheckOut)
@needs(Can.EDIT)
def check_campaign(request: Request, form: StarterIn) -> dict[str, Any]:
    """Live validation of a starter form: its problems (empty: it can be created)."""
    return {"problems": problems_json(service.check_campaign(web_of(request), form.form()))}


@router.post("/campaigns", status_code=201, response_model=SavedOut)
@needs(Can.EDIT)
def create_campaign(request: Request, form: StarterIn) -> SavedOut:
    """A new campaign from a starter form: its file, templates from default words, catalogs (version 1)."""
    return _saved(service.create_campaign(web_of(request), form.form(), origin="api"))


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
@needs(Can.READ)
def get_campaign(request: Request, campaign_id: str) -> dict[str, Any]:
    return service.campaign_info(web_of(request), campaign_id)


@router.put("/campaigns/{campaign_id}/file", response_model=SavedOut,
            openapi_extra=_body_doc("application/yaml", "the campaign's YAML (at most 256 KiB)"))
@capped(MAX_FILE)
@needs(Can.EDIT)
def put_file(request: Request, campaign_id: str, body: bytes = Depends(raw_body),
             if_match: str | None = IF_MATCH) -> SavedOut:
    """The campaign's file edited: a new version (422 with located problems when the file is not valid)."""
    text = _text(body, f"campaigns/{campaign_id}.yaml")
    return _saved(service.save_file(web_of(request), campaign_id, text, origin="api", base_version=_base(if_match)))


@router.get("/campaigns/{campaign_id}/words", responses={409: {"description": "templates written by hand"}})
@needs(Can.READ)
def get_words(request: Request, campaign_id: str) -> dict[str, Any]:
    """The source words: ``{source_locale, stages: {announcement|reminder|last_day|merged: {subject, preheader,
    heading, paragraphs, button, push_title, push_body, plurals}}}``."""
    words = service.get_words(web_of(request), campaign_id)
    if words is None:
        raise CampaignStateError(f"campaign {campaign_id!r} has templates written by hand: no words to edit")
    return words


@router.put("/campaigns/{campaign_id}/words", response_model=SavedOut)
@needs(Can.EDIT)
def put_words(request: Request, campaign_id: str, words: dict[str, Any], if_match: str | None = IF_MATCH) -> SavedOut:
    """New source words (as GET gives them): the templates are generated again, changed texts need translating."""
    return _saved(service.put_words(web_of(request), campaign_id, words, origin="api", base_version=_base(if_match)))


def _catalog_routes(suffix: str, fmt: str, media: str) -> None:
    @router.get(f"/campaigns/{{campaign_id}}/translations/{{locale}}.{suffix}", response_class=Response,
                responses={200: {"content": {media: {}}}}, name=f"export_{fmt}")
    @needs(Can.READ)
    def export(request: Request, campaign_id: str, locale: str) -> Response:
        data, name, media_type = service.export_catalog(web_of(request), campaign_id, locale, fmt)
        return Response(data, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @router.put(f"/campaigns/{{campaign_id}}/translations/{{locale}}.{suffix}", response_model=SavedOut,
                openapi_extra=_body_doc(media, f"a {fmt.upper()} file of the locale (at most 1 MiB)"),
                name=f"import_{fmt}")
    @capped(MAX_CATALOG)
    @needs(Can.EDIT)
    def import_(request: Request, campaign_id: str, locale: str, body: bytes = Depends(raw_body),
                file_name: str | None = Query(None, max_length=200, description="the file's name, for problems"),
                if_match: str | None = IF_MATCH) -> SavedOut:
        """A translator's file back: problems name each refused entry, then what the gate still finds (422 when
        nothing in it can be taken)."""
        name = _file_name(file_name or f"{campaign_id}.{locale}.{suffix}")
        return _saved(service.import_catalog(web_of(request), campaign_id, locale, body, name, origin="api",
                                             base_version=_base(if_match)))


_catalog_routes("po", "po", service.MEDIA["po"])
_catalog_routes("xlf", "xliff", service.MEDIA["xliff"])


@router.get("/campaigns/{campaign_id}/translations/{locale}", response_model=list[EntryOut])
@needs(Can.READ)
def get_translations(request: Request, campaign_id: str, locale: str) -> list[Any]:
    """Side by side: each entry's source, target per plural form, status and problems."""
    return [EntryOut.model_validate(e, from_attributes=True)
            for e in service.get_translations(web_of(request), campaign_id, locale)]


@router.post("/campaigns/{campaign_id}/translations/{locale}/check", response_model=TranslationCheckOut)
@capped(MAX_JSON)
@needs(Can.EDIT)
def check_translation(request: Request, campaign_id: str, locale: str, entry: TranslationCheckIn) -> dict[str, Any]:
    """The gate's verdict on one entry with these forms, nothing saved (the studio shows it as one types)."""
    return service.check_translation(web_of(request), campaign_id, locale, entry.key, entry.forms)


@router.put("/campaigns/{campaign_id}/translations/{locale}", response_model=SavedOut)
@capped(MAX_CATALOG)
@needs(Can.EDIT)
def put_translations(request: Request, campaign_id: str, locale: str, changes: dict[str, list[str]],
                     if_match: str | None = IF_MATCH) -> SavedOut:
    """``{key: [form, ...]}``: each entry's translation, one text per plural form of the locale."""
    return _saved(service.put_translations(web_of(request), campaign_id, locale, changes, origin="api",
                                           base_version=_base(if_match)))


@router.get("/campaigns/{campaign_id}/gate", response_model=GateOut)
@needs(Can.READ)
def get_gate(request: Request, campaign_id: str) -> dict[str, Any]:
    """The translation gate and every message rendered: errors stop scheduling, warnings are cut on some screens."""
    errors, warnings = service.gate(web_of(request), campaign_id)
    return {"errors": problems_json(errors), "warnings": problems_json(warnings)}


@router.get("/campaigns/{campaign_id}/preview/choices")
@needs(Can.READ)
def preview_choices(request: Request, campaign_id: str) -> dict[str, Any]:
    """``{locales, channels, sends: [{send_key, words}]}``: what GET .../preview may show."""
    return service.preview_choices(web_of(request), campaign_id)


@router.get("/campaigns/{campaign_id}/preview", response_model=PreviewOut)
@needs(Can.READ)
def get_preview(request: Request, campaign_id: str, locale: str, send: str, channel: str,
                recipient: str | None = Query(None, description="a recipient's id: their zone, name, locale")) -> Any:
    """One message as the sender renders it: an email (subject, html, text) or a push (title, body, link); with
    ``recipient``, as that person gets it (their personal data: editors and up)."""
    if recipient:
        refuse_unless(request.state.caller.role, Can.PERSONAL)
    return service.preview(web_of(request), campaign_id, locale=locale, send_key=send, channel=channel,
                           recipient_id=recipient)


# --- the audience -----------------------------------------------------------------------------------------------


def _mapping(text: str | None) -> dict[str, str] | None:
    """The ``mapping`` query parameter: a JSON object, column in the file -> field."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise CampaignError([Problem("request", None, "mapping", 'expected a JSON object {"column": "field", ...}')])
    return value


def _file_name(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name[:200] or "audience.csv"


MAPPING = Query(None, description='JSON object: column in the file -> field ("e-mail" -> "email"; "" leaves it out)')


@router.post("/audience/sniff", response_model=SniffOut,
             openapi_extra=_body_doc("text/csv", "the first bytes of the file (64 KiB are enough)"))
@capped(MAX_HEAD)
@needs(Can.EDIT)
def sniff(request: Request, file_name: str = Query(max_length=200), mapping: str | None = MAPPING,
          body: bytes = Depends(raw_body)) -> Any:
    """A file's format, columns, suggested mapping and first rows as they will be stored."""
    return SniffOut.model_validate(service.sniff_upload(web_of(request), body, _file_name(file_name),
                                                        _mapping(mapping)), from_attributes=True)


def _status(web: Web, upload_id: str) -> UploadOut:
    st = service.upload_status(web, upload_id)
    return UploadOut(**{k: getattr(st, k) for k in UploadOut.model_fields})


@router.post("/audience/uploads", status_code=202, response_model=UploadOut,
             openapi_extra=_body_doc("text/csv", "the audience file, CSV or JSON Lines (at most 2 GiB), streamed"))
@capped(0)
@needs(Can.EDIT)
async def upload(request: Request, file_name: str = Query(max_length=200), mapping: str | None = MAPPING,
                 format: str | None = Query(None, pattern="^(csv|jsonl)$")) -> Any:
    """Import an audience in the background: follow it with GET .../uploads/{id}; closing the client loses nothing.
    Without ``mapping``, the columns are mapped as POST /audience/sniff suggests."""
    web, chosen = web_of(request), _mapping(mapping)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD:
        raise RequestRefused(413, f"the file is {declared} bytes; at most {MAX_UPLOAD // 1024**3} GiB")
    folder = web.settings.studio_dir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    spool, size = folder / str(uuid.uuid4()), 0
    try:
        with spool.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD:
                    raise RequestRefused(413, f"the file is over {MAX_UPLOAD // 1024**3} GiB")
                out.write(chunk)
        if not size:
            raise CampaignError([Problem(_file_name(file_name), None, None, "the file is empty")])
        upload_id = await run_in_threadpool(service.start_upload, web, spool, _file_name(file_name), format, chosen)
    except BaseException:
        spool.unlink(missing_ok=True)
        raise
    return await run_in_threadpool(_status, web, upload_id)


@router.get("/audience/uploads/{upload_id}", response_model=UploadOut)
@needs(Can.EDIT)
def upload_status(request: Request, upload_id: str) -> Any:
    return _status(web_of(request), upload_id)


@router.get("/audience/uploads/{upload_id}/rejects.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
@needs(Can.PERSONAL)
def rejects(request: Request, upload_id: str) -> StreamingResponse:
    """The rejected rows: ``line,reason``, header first."""
    rows = service.rejects_csv(web_of(request), upload_id)
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="rejects.csv"'})


# --- trying it --------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """A result of the studio (frozen dataclasses, tuples, mappings, aware times, paths) as JSON."""
    return to_jsonable_python(value, fallback=lambda v: dict(v) if isinstance(v, Mapping) else str(v))


@router.post("/campaigns/{campaign_id}/dry-run")
@needs(Can.EDIT)
def dry_run(request: Request, campaign_id: str) -> dict[str, Any]:
    """What scheduling now would send to today's audience: totals, per wave x locale x channel, skipped and why,
    first and last send per zone. Nothing is written."""
    return _jsonable(service.dry_run(web_of(request), campaign_id))  # type: ignore[no-any-return]


@router.post("/campaigns/{campaign_id}/fast-forward")
@needs(Can.PERSONAL)
def fast_forward(request: Request, campaign_id: str,
                 limit: int = Query(200, ge=0, le=5000, description="messages listed (the first ones sent)")
                 ) -> dict[str, Any]:
    """The campaign played to its end on a simulated clock, in a ledger of its own: counts and the preview outbox
    (``messages_total`` messages; the first ``limit`` listed)."""
    ff = service.fast_forward(web_of(request), campaign_id)
    return {"counts": dict(ff.counts), "messages_total": len(ff.messages), "messages": [
        {"channel": m.channel, "locale": m.locale, "send_key": m.send_key, "subject": m.subject,
         "file": m.path.relative_to(ff.directory).as_posix() if m.path.is_relative_to(ff.directory) else m.path.name}
        for m in ff.messages[:limit]]}


@router.get("/campaigns/{campaign_id}/seeds", response_model=list[SeedModel])
@needs(Can.PERSONAL)
def get_seeds(request: Request, campaign_id: str) -> list[Any]:
    return [SeedModel.model_validate(s, from_attributes=True) for s in service.seeds(web_of(request), campaign_id)]


@router.put("/campaigns/{campaign_id}/seeds", response_model=list[SeedModel])
@needs(Can.EDIT)
def put_seeds(request: Request, campaign_id: str, seeds: list[SeedModel]) -> list[Any]:
    """The seed list, replaced whole: the addresses and push tokens test sends go to."""
    web = web_of(request)
    service.set_seeds(web, campaign_id, [s.model_dump() for s in seeds])
    return [SeedModel.model_validate(s, from_attributes=True) for s in service.seeds(web, campaign_id)]


@router.post("/campaigns/{campaign_id}/test-send")
@needs(Can.EDIT)
def test_send(request: Request, campaign_id: str, body: TestSendIn) -> dict[str, Any]:
    """One message to each seed of the channel through the real transport, marked as a test, never counted."""
    results = service.test_send(web_of(request), campaign_id, locale=body.locale, send_key=body.send,
                                channel=body.channel)
    return {"results": _jsonable(list(results))}


# --- sending it -------------------------------------------------------------------------------------------------


@router.post("/campaigns/{campaign_id}/{action}", responses={200: {"description": "the campaign's progress"}})
@needs(Can.SEND)
def control(request: Request, campaign_id: str, action: str) -> dict[str, Any]:
    """schedule (approve the copy and plan the sends) | pause | resume | cancel; answers the progress."""
    web = web_of(request)
    if action == "schedule":
        service.schedule(web, campaign_id)
    elif action in service.STATE_OF_ACTION:
        service.set_state(web, campaign_id, action)
    else:
        raise NotFound(f"no such action: {action[:40]!r} (schedule, pause, resume or cancel)")
    return service.progress(web, campaign_id)


@router.get("/campaigns/{campaign_id}/progress")
@needs(Can.READ)
def progress(request: Request, campaign_id: str) -> dict[str, Any]:
    """Counts in messages: planned (from the first second), done, percent, by send x channel x state, and why."""
    return service.progress(web_of(request), campaign_id)


@router.get("/campaigns/{campaign_id}/results")
@needs(Can.READ)
def get_results(request: Request, campaign_id: str) -> dict[str, Any]:
    """What became of the messages per send x locale x channel, and per deadline who has acted, day by day (the
    Results page; ``notifier campaign report --json``)."""
    from notifier.results import results

    with web_of(request).sessions() as s:
        return results(s, campaign_id).as_dict()


@router.get("/campaigns/{campaign_id}/results.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
@needs(Can.READ)
def get_results_csv(request: Request, campaign_id: str) -> Response:
    """The Results table as CSV, one line per send x locale x channel."""
    from notifier.results import csv_lines, results
    from notifier.web.dashboard.results import csv_response

    with web_of(request).sessions() as s:
        res = results(s, campaign_id)
    return csv_response(csv_lines(res), f"{campaign_id}-results.csv")


@router.get("/campaigns/{campaign_id}/not-acted/{deadline_id}.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
@needs(Can.PERSONAL)
def get_not_acted(request: Request, campaign_id: str, deadline_id: str) -> Response:
    """The ids of the audience who have not done the deadline's skip_if action, one a line, streamed."""
    from notifier.web.dashboard.results import not_acted_response

    return not_acted_response(web_of(request).sessions, campaign_id, deadline_id)


@router.get("/campaigns/{campaign_id}/export", response_class=Response,
            responses={200: {"content": {"application/zip": {}}}})
@needs(Can.READ)
def export(request: Request, campaign_id: str, version: int | None = None) -> Response:
    """A stored version's files as a zip, in the project's layout (what ``notifier campaign export`` writes)."""
    bundle = service.bundle(web_of(request), campaign_id, version)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(bundle):
            z.writestr(zipfile.ZipInfo(path, (2027, 1, 1, 0, 0, 0)), bundle[path])
    return Response(out.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{campaign_id}.zip"'})
