"""The HTTP JSON API (`dualens serve`): the UI's :class:`~ui.backend.Backend` over FastAPI.

Read-only. Requests name photos by database id, never by path; thumbnails and originals are served
only for files inside the collection's roots. Result pages go through :meth:`Backend.run`, the page's
own request path. Every answer is a model of ui/schema.py; every error is a JSON body ``{"error":
{"code", "message"}}`` with a 4xx status for a bad request (5xx only for a server fault). Optional API
key: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` on every route but ``/health``.

Uploads: a request with a body is checked by :class:`UploadGate` before any byte of the body is
read: the API key first, then ``Content-Length``; the streamed body (chunked too) is cut off at
:func:`body_limit`, so no more than that is ever buffered or written to a temporary file.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from PIL import Image
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from indexer.core.errors import DualensError, NotFoundError, UsageError
from indexer.core.text import displayable
from search import Filters, Hit
from ui.backend import Backend, RequestKind, ResultPage, SearchRequest
from ui.config import UiConfig, read_api_key
from ui.safety import decode_upload
from ui.schema import (
    MAX_K,
    MAX_OFFSET,
    ErrorBody,
    FacetsOut,
    FilterParams,
    Health,
    LabelsOut,
    MonthGroup,
    Page,
    PhotoLabelsOut,
    SearchPage,
    SimilarPage,
    StatsOut,
    TimelinePage,
    Unauthorised,
    UnderstoodOut,
    UploadTooLarge,
    error_code,
    month_key,
)

MAX_LABELS = 50
ENVELOPE_BYTES = 64 * 1024  # multipart headers and the labels field, on top of the image itself

MAX_QUERY_CHARS = 4096  # the query language's own limit

Text = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="the query")]
K = Annotated[int, Query(ge=1, le=MAX_K, description="hits per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="hits to skip")]
Labels = Annotated[str, Query(min_length=1, max_length=2000, description="comma-separated labels")]
Sort = Annotated[
    Literal["relevance", "date"],
    Query(description="date: newest first (a text query keeps its good and strong matches)"),
]
Literally = Annotated[bool, Query(description="true: no dates or places read from the query")]
NEEDS_KEY = "a valid API key is needed (Authorization: Bearer KEY)"


@dataclass(frozen=True)
class ApiSettings:
    data: str | None = None
    api_key: str | None = None
    config: UiConfig = field(default_factory=UiConfig)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def body_limit(config: UiConfig) -> int:
    """The most bytes a request body may have: the upload limit and the multipart envelope."""
    return config.max_upload_bytes + ENVELOPE_BYTES


def key_accepted(headers: Mapping[str, str], api_key: str | None) -> bool:
    """Whether the request carries the API key (always, when the service has none)."""
    if api_key is None:
        return True
    given = headers.get("x-api-key") or ""
    auth = headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return hmac.compare_digest(given.encode("utf-8", "replace"), api_key.encode("utf-8", "replace"))


class _Shared:
    """The app's one Backend: opened on the first request that needs it, closed at shutdown."""

    def __init__(self, opener: Callable[[], Backend]) -> None:
        self._opener = opener
        self._lock = threading.Lock()
        self._backend: Backend | None = None

    def get(self) -> Backend:
        with self._lock:
            if self._backend is None:
                self._backend = self._opener()
            found = self._backend
        found.refresh()  # a newer index written by the indexer is picked up between requests
        return found

    def close(self) -> None:
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None


# ---------------------------------------------------------------------- the gate before a body is read


async def _answer(send: Send, error: DualensError) -> None:
    """Send ``error`` as the API's JSON error answer."""
    body = json.dumps(ErrorBody.of(error_code(type(error)), str(error)).model_dump()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class UploadGate:
    """ASGI middleware for requests with a body: the API key and ``Content-Length`` are checked
    before any body byte is read (401, 413), and the streamed body is cut off at ``max_body`` bytes
    (413; the app then sees a disconnect and its own answer is dropped)."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body: int, max_upload: int) -> None:
        self.app = app
        self.api_key, self.max_body, self.max_upload = api_key, max_body, max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not key_accepted(headers, self.api_key):
            await _answer(send, Unauthorised(NEEDS_KEY))
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            await _answer(send, self._too_large(_mb(int(length))))
            return
        received, refused = 0, False

        async def capped_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    refused = True
                    await _answer(send, self._too_large(f"more than {_mb(self.max_body)}"))
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # after a 413, the app's own answer (to the disconnect) is dropped
                await send(message)

        await self.app(scope, capped_receive, guarded_send)

    def _too_large(self, size: str) -> UploadTooLarge:
        return UploadTooLarge(f"The upload is too large ({size}; the limit is {_mb(self.max_upload)}).")


# ---------------------------------------------------------------------- dependencies


def backend(request: Request) -> Backend:
    """The app's Backend, with a newer index picked up (a stat of the index file; the database is
    read only when the file changed)."""
    shared: _Shared = request.app.state.backend
    return shared.get()


async def authorised(request: Request) -> None:  # async: a header check needs no worker thread
    if not key_accepted(request.headers, request.app.state.settings.api_key):
        raise Unauthorised(NEEDS_KEY)


async def filters(params: Annotated[FilterParams, Query()]) -> Filters:  # async: it never blocks
    return params.to_filters()


FilterArgs = Annotated[Filters, Depends(filters)]
TheBackend = Annotated[Backend, Depends(backend)]
guarded = [Depends(authorised)]

router = APIRouter()


class JSONAnswer(JSONResponse):
    """JSON in ASCII: a file name that is not UTF-8 (lone surrogates, ``indexer/core/text.py``) travels
    exactly, as ``\\udce9`` escapes any JSON parser reads back, instead of failing to encode (a 500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def _page(result: ResultPage, model: type[Page], k: int, offset: int, **extra: Any) -> JSONResponse:
    """A result page, serialised here: hits are plain JSON types already (``Hit.to_json``), so
    FastAPI's generic encoder (a recursive walk over every field of every hit) is skipped."""
    hits = [h.to_json() for h in result.hits]
    page = model(k=k, offset=offset, hits=hits, has_more=result.has_more, total=result.total, **extra)
    return JSONAnswer(page.model_dump(mode="json"))


def _request(kind: RequestKind, f: Filters, k: int, offset: int, **extra: Any) -> SearchRequest:
    return SearchRequest(kind, filters=f, limit=k, offset=offset, **extra)


@router.get("/health", tags=["service"], response_model=None)
def health(request: Request) -> Health | JSONResponse:
    """Liveness: the collection opens and how many photos it holds (no API key needed, so a failure
    says nothing about the database: its URL and the driver's message need the key, on /stats)."""
    try:
        stats = backend(request).stats()
    except DualensError:
        body = ErrorBody.of("unavailable", "the collection cannot be opened; see /stats (API key needed)")
        return JSONAnswer(body.model_dump(), status_code=503)
    return Health(photos=stats.n_indexed, generation=stats.generation)


@router.get("/stats", tags=["service"], dependencies=guarded)
def stats(b: TheBackend) -> StatsOut:
    return StatsOut.of(b.stats(), b.index_label())


@router.get("/facets", tags=["service"], dependencies=guarded)
def facets(b: TheBackend) -> FacetsOut:
    """What filters can offer: folders with photo counts, file types, the date range."""
    return FacetsOut.of(b.facets())


@router.get("/search", tags=["search"], dependencies=guarded, response_model=SearchPage)
def search(
    b: TheBackend,
    q: Text,
    f: FilterArgs,
    k: K = 20,
    offset: Offset = 0,
    sort: Sort = "relevance",
    literal: Literally = False,
) -> JSONResponse:
    """Photos matching a description or a composite query (`"beach" - "people"`, `#42 + "night"`);
    dates and places named in it become filters (`understood`), unless `literal=true`."""
    result = b.run(_request("text", f, k, offset, text=q, sort=sort, literal=literal))
    understood = UnderstoodOut.of(result.understood) if result.understood else None
    return _page(result, SearchPage, k, offset, query=q, understood=understood)


@router.get("/similar/{photo_id}", tags=["search"], dependencies=guarded, response_model=SimilarPage)
def similar(
    b: TheBackend, photo_id: int, f: FilterArgs, k: K = 20, offset: Offset = 0, sort: Sort = "relevance"
) -> JSONResponse:
    """Photos like an indexed photo (the photo itself left out)."""
    _photo_or_404(b, photo_id)  # inside the roots, or not available
    result = b.run(_request("similar", f, k, offset, photo_id=photo_id, sort=sort))
    return _page(result, SimilarPage, k, offset, photo_id=photo_id)


@router.get("/timeline", tags=["search"], dependencies=guarded, response_model=TimelinePage)
def timeline(b: TheBackend, f: FilterArgs, k: K = 20, offset: Offset = 0) -> JSONResponse:
    """The collection newest first (date taken, else the file's date; equal dates: the newer id
    first), the folder, date, type and place filters applied (`min_match` and `min_score` rank
    queries and are ignored here), with each photo's month (`months`) and their runs (`groups`)."""
    result = b.run(_request("timeline", f, k, offset))
    months = [month_key(hit) for hit in result.hits]
    return _page(result, TimelinePage, k, offset, months=months, groups=MonthGroup.runs(result.hits))


def _uploaded(image: UploadFile, config: UiConfig) -> Image.Image:
    """The decoded upload; the body was capped at body_limit(), so the bytes read are all of it."""
    data = image.file.read(body_limit(config) + 1)
    if len(data) > config.max_upload_bytes:
        raise UploadTooLarge(
            f"The uploaded file is too large ({_mb(len(data))}; the limit is {_mb(config.max_upload_bytes)})."
        )
    return decode_upload(data, max_bytes=config.max_upload_bytes, max_pixels=config.max_upload_pixels)


@router.post("/similar", tags=["search"], dependencies=guarded, response_model=Page)
def similar_upload(
    b: TheBackend,
    image: Annotated[UploadFile, File(description="an image file")],
    f: FilterArgs,
    k: K = 20,
    offset: Offset = 0,
    sort: Sort = "relevance",
) -> JSONResponse:
    """Photos like an uploaded image (never stored)."""
    result = b.run(_request("image", f, k, offset, sort=sort), image=_uploaded(image, b.config))
    return _page(result, Page, k, offset)


def _label_list(labels: str) -> list[str]:
    names = [name.strip() for name in labels.split(",") if name.strip()]
    if not names or len(names) > MAX_LABELS:
        raise UsageError(f"give 1 to {MAX_LABELS} comma-separated labels")
    return names


@router.get("/classify/{photo_id}", tags=["search"], dependencies=guarded)
def classify(b: TheBackend, photo_id: int, labels: Labels) -> PhotoLabelsOut:
    """Zero-shot label probabilities of an indexed photo."""
    _photo_or_404(b, photo_id)
    scores = b.classify(photo_id, _label_list(labels))
    return PhotoLabelsOut(photo_id=photo_id, labels=LabelsOut.of(scores).labels)


@router.post("/classify", tags=["search"], dependencies=guarded)
def classify_upload(
    b: TheBackend,
    image: Annotated[UploadFile, File()],
    labels: Annotated[str, Form(min_length=1, max_length=2000)],
) -> LabelsOut:
    """Zero-shot label probabilities of an uploaded image."""
    return LabelsOut.of(b.classify(_uploaded(image, b.config), _label_list(labels)))


def _photo_or_404(b: Backend, photo_id: int) -> Hit:
    hit = b.photo(photo_id)
    if hit is None:
        raise NotFoundError(f"photo {photo_id} is not an indexed photo of this collection")
    return hit


@router.get("/photos/{photo_id}", tags=["photos"], dependencies=guarded)
def photo(b: TheBackend, photo_id: int) -> JSONResponse:
    return JSONAnswer(_photo_or_404(b, photo_id).to_json())


@router.get(
    "/photos/{photo_id}/thumbnail", tags=["photos"], dependencies=guarded, response_class=FileResponse
)
def thumbnail(
    b: TheBackend,
    photo_id: int,
    preview: bool = False,
    w: Annotated[int | None, Query(ge=1, le=4096)] = None,
    square: bool = True,
) -> FileResponse:
    """``w``: a grid thumbnail for a slot of that many pixels (rounded up to an allowed size);
    ``square=false``: the whole photo, its longest edge that size (the UI's justified grid)."""
    path = b.thumbnail(_photo_or_404(b, photo_id), preview=preview, px=w, square=square)
    if path is None:
        raise NotFoundError(f"photo {photo_id} cannot be read any more")
    return FileResponse(path, media_type="image/jpeg")


@router.get("/photos/{photo_id}/original", tags=["photos"], dependencies=guarded, response_class=FileResponse)
def original(b: TheBackend, photo_id: int) -> FileResponse:
    path = b.original(_photo_or_404(b, photo_id))  # inside the roots, symlinks resolved, or None
    if path is None:
        raise NotFoundError(f"photo {photo_id} is not available")
    if not path.is_file():
        raise NotFoundError(f"photo {photo_id} cannot be read any more")
    return FileResponse(path, filename=displayable(os.path.basename(path)))


# ---------------------------------------------------------------------- errors


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONAnswer(ErrorBody.of(code, message).model_dump(), status_code=status)


def _dualens_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DualensError)
    return _error(exc.http_status, error_code(type(exc)), str(exc))


def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
        for e in exc.errors()
    )
    return _error(422, "invalid_request", problems or "invalid request")


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _error(exc.status_code, "http_error", str(exc.detail))


def create_app(settings: ApiSettings, open_backend: Callable[[], Backend] | None = None) -> FastAPI:
    """The API over the collection in ``settings.data`` (opened once, on the first request)."""
    app = FastAPI(
        title="dualens",
        summary="Find photos by describing them or by showing one.",
        version="1",
        openapi_tags=[{"name": "search"}, {"name": "photos"}, {"name": "service"}],
        default_response_class=JSONAnswer,
    )
    app.state.settings = settings
    app.state.backend = _Shared(open_backend or (lambda: Backend.open(settings.data, settings.config)))
    app.include_router(router)
    app.add_exception_handler(DualensError, _dualens_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(
        UploadGate,
        api_key=settings.api_key,
        max_body=body_limit(settings.config),
        max_upload=settings.config.max_upload_bytes,
    )
    app.router.on_shutdown.append(app.state.backend.close)
    return app


def app_from_env() -> FastAPI:
    """The app of `dualens serve --workers N` (uvicorn imports it in each worker process)."""
    key_file = os.environ.get("DUALENS_API_KEY_FILE")
    key = read_api_key(key_file) if key_file else None
    return create_app(
        ApiSettings(data=os.environ.get("DUALENS_DATA"), api_key=key, config=UiConfig.from_env())
    )
