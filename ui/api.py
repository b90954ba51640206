"""The HTTP JSON API (`dualens serve`): the UI's :class:`~ui.backend.Backend` over FastAPI.

Read-only. Requests name photos by database id, never by path; thumbnails and originals are served
only for files inside the collection's roots. Every error is a JSON body ``{"error": {"code",
"message"}}`` with a 4xx status for a bad request (5xx only for a server fault). Optional API key:
``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` on every route but ``/health``.
"""

import hmac
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer.core.errors import (
    CollectionError,
    DualensError,
    ImageError,
    ModelError,
    NotFoundError,
    QueryError,
    UnsafePathError,
    UsageError,
)
from indexer.core.text import displayable
from search import Filters, Hit, parse_date
from ui.backend import Backend
from ui.config import UiConfig, read_api_key
from ui.safety import decode_upload

MAX_K = 200
MAX_OFFSET = 10_000
MAX_LABELS = 50

MAX_QUERY_CHARS = 4096  # the query language's own limit

Text = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="the query")]
K = Annotated[int, Query(ge=1, le=MAX_K, description="hits per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="hits to skip")]
Folder = Annotated[str | None, Query(max_length=4096, description="absolute, or relative to a root")]
Day = Annotated[str | None, Query(max_length=10, description="YYYY, YYYY-MM or YYYY-MM-DD")]
Kinds = Annotated[list[str] | None, Query(alias="type", description="file type, e.g. jpg (repeatable)")]
MinScore = Annotated[float | None, Query(ge=-1.0, le=1.0, description="minimum cosine")]
MinMatch = Annotated[
    Literal["good", "strong"] | None, Query(description="text queries: this match band or better")
]
PlaceName = Annotated[str | None, Query(max_length=200, description="a city, region or country")]
Labels = Annotated[str, Query(min_length=1, max_length=2000, description="comma-separated labels")]


async def filters(  # async: parsed on the event loop, not in a worker thread (it never blocks)
    folder: Folder = None,
    after: Day = None,
    before: Day = None,
    kind: Kinds = None,
    min_score: MinScore = None,
    min_match: MinMatch = None,
    place: PlaceName = None,
) -> Filters:
    return Filters(
        folder=folder or None,
        date_from=parse_date(after, end=False),
        date_to=parse_date(before, end=True),
        file_types=tuple(kind or ())[:32],
        min_score=min_score,
        min_match=min_match,
        place=place,
    )


FilterArgs = Annotated[Filters, Depends(filters)]


@dataclass(frozen=True)
class ApiSettings:
    data: str | None = None
    api_key: str | None = None
    config: UiConfig = field(default_factory=UiConfig)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _status(exc: DualensError) -> tuple[int, str]:
    if isinstance(exc, NotFoundError):
        return 404, "not_found"
    if isinstance(exc, QueryError | UsageError | ImageError | UnsafePathError):
        return 400 if not isinstance(exc, ImageError) else 422, "bad_request"
    if isinstance(exc, CollectionError | ModelError):
        return 503, "unavailable"
    return 400, "bad_request"


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(settings: ApiSettings, open_backend: Callable[[], Backend] | None = None) -> FastAPI:
    """The API over the collection in ``settings.data`` (opened once, on the first request)."""
    app = FastAPI(
        title="dualens",
        summary="Find photos by describing them or by showing one.",
        version="1",
        openapi_tags=[{"name": "search"}, {"name": "photos"}, {"name": "service"}],
    )
    opener = open_backend or (lambda: Backend.open(settings.data, settings.config))
    state: dict[str, Backend] = {}
    lock = threading.Lock()
    config = settings.config

    def backend() -> Backend:
        with lock:
            if "backend" not in state:
                state["backend"] = opener()
            found = state["backend"]
        found.refresh()  # a newer index written by the indexer is picked up between requests
        return found

    async def authorised(request: Request) -> None:  # async: a header check needs no worker thread
        if settings.api_key is None:
            return
        given = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
            raise ApiError(401, "unauthorised", "a valid API key is needed (Authorization: Bearer KEY)")

    @app.exception_handler(ApiError)
    def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(DualensError)
    def _dualens_error(_: Request, exc: DualensError) -> JSONResponse:
        status, code = _status(exc)
        return _error(status, code, str(exc))

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        )
        return _error(422, "invalid_request", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, "http_error", str(exc.detail))

    guarded = [Depends(authorised)]

    # Each route calls backend() once: it picks up a newer index for the request (a stat of the index
    # file; the database is read only when the file changed).
    def page(b: Backend, hits: list[Hit], k: int, offset: int, **extra: Any) -> JSONResponse:
        """A result page, serialised here: plain JSON types already, so FastAPI's generic encoder
        (a recursive walk over every field of every hit, most of a page's HTTP cost) is skipped."""
        shown = [h for h in hits if b.guard.inside_roots(h.path)]  # a symlink out shows nothing
        return JSONResponse({**extra, "k": k, "offset": offset, "hits": [h.to_json() for h in shown]})

    @app.get("/health", tags=["service"], response_model=None)
    def health() -> dict[str, Any] | JSONResponse:
        """Liveness: the collection opens and how many photos it holds (no API key needed, so a
        failure says nothing about the database: its URL and the driver's message need the key)."""
        try:
            stats = backend().stats()
        except DualensError:
            return _error(503, "unavailable", "the collection cannot be opened; see /stats (API key needed)")
        return {"status": "ok", "photos": stats.n_indexed, "generation": stats.generation}

    @app.get("/stats", tags=["service"], dependencies=guarded)
    def stats() -> dict[str, Any]:
        b = backend()
        s = b.stats()
        last = s.last_indexed_at.isoformat() if s.last_indexed_at else None
        return {
            "photos": s.n_indexed, "failed": s.n_failed, "pending": s.n_pending, "model": s.model_id,
            "dim": s.dim, "generation": s.generation, "last_indexed_at": last,
            "index": b.searcher.index.describe().label, "roots": [str(r) for r in s.roots],
        }  # fmt: skip

    @app.get("/facets", tags=["service"], dependencies=guarded)
    def facets() -> dict[str, Any]:
        """What filters can offer: folders with photo counts, file types, the date range."""
        f = backend().facets()
        return {
            "folders": [asdict(option) for option in f.folders], "file_types": list(f.file_types),
            "places": [asdict(option) for option in f.places],
            "first_date": f.first_date.isoformat() if f.first_date else None,
            "last_date": f.last_date.isoformat() if f.last_date else None,
        }  # fmt: skip

    @app.get("/search", tags=["search"], dependencies=guarded)
    def search(q: Text, f: FilterArgs, k: K = 20, offset: Offset = 0) -> JSONResponse:
        """Photos matching a description or a composite query (`"beach" - "people"`, `#42 + "night"`)."""
        b = backend()
        return page(b, b.searcher.search(b.safe_query(q), k=k, offset=offset, filters=f), k, offset, query=q)

    @app.get("/similar/{photo_id}", tags=["search"], dependencies=guarded)
    def similar(photo_id: int, f: FilterArgs, k: K = 20, offset: Offset = 0) -> JSONResponse:
        """Photos like an indexed photo (the photo itself left out)."""
        b = backend()
        photo_or_404(b, photo_id)  # inside the roots, or not available
        hits = b.searcher.similar(photo_id, k=k, offset=offset, filters=f)
        return page(b, hits, k, offset, photo_id=photo_id)

    def uploaded(image: UploadFile) -> Any:
        data = image.file.read(config.max_upload_bytes + 1)
        return decode_upload(data, max_bytes=config.max_upload_bytes, max_pixels=config.max_upload_pixels)

    @app.post("/similar", tags=["search"], dependencies=guarded)
    def similar_upload(
        image: Annotated[UploadFile, File(description="an image file")],
        f: FilterArgs,
        k: K = 20,
        offset: Offset = 0,
    ) -> JSONResponse:
        """Photos like an uploaded image (never stored)."""
        b = backend()
        return page(b, b.searcher.search_image(uploaded(image), k=k, offset=offset, filters=f), k, offset)

    def label_list(labels: str) -> list[str]:
        names = [name.strip() for name in labels.split(",") if name.strip()]
        if not names or len(names) > MAX_LABELS:
            raise ApiError(400, "bad_request", f"give 1 to {MAX_LABELS} comma-separated labels")
        return names

    @app.get("/classify/{photo_id}", tags=["search"], dependencies=guarded)
    def classify(photo_id: int, labels: Labels) -> dict[str, Any]:
        """Zero-shot label probabilities of an indexed photo."""
        b = backend()
        photo_or_404(b, photo_id)
        scores = b.searcher.classify(photo_id, label_list(labels))
        return {"photo_id": photo_id, "labels": [{"label": n, "probability": p} for n, p in scores]}

    @app.post("/classify", tags=["search"], dependencies=guarded)
    def classify_upload(
        image: Annotated[UploadFile, File()], labels: Annotated[str, Form(min_length=1, max_length=2000)]
    ) -> dict[str, Any]:
        """Zero-shot label probabilities of an uploaded image."""
        scores = backend().searcher.classify(uploaded(image), label_list(labels))
        return {"labels": [{"label": n, "probability": p} for n, p in scores]}

    def photo_or_404(b: Backend, photo_id: int) -> Hit:
        hit = b.photo(photo_id)
        if hit is None:
            raise NotFoundError(f"photo {photo_id} is not an indexed photo of this collection")
        return hit

    @app.get("/photos/{photo_id}", tags=["photos"], dependencies=guarded)
    def photo(photo_id: int) -> dict[str, Any]:
        return photo_or_404(backend(), photo_id).to_json()

    @app.get(
        "/photos/{photo_id}/thumbnail", tags=["photos"], dependencies=guarded, response_class=FileResponse
    )
    def thumbnail(photo_id: int, preview: bool = False) -> FileResponse:
        b = backend()
        path = b.thumbnail(photo_or_404(b, photo_id), preview=preview)
        if path is None:
            raise NotFoundError(f"photo {photo_id} cannot be read any more")
        return FileResponse(path, media_type="image/jpeg")

    @app.get(
        "/photos/{photo_id}/original", tags=["photos"], dependencies=guarded, response_class=FileResponse
    )
    def original(photo_id: int) -> FileResponse:
        b = backend()
        hit = photo_or_404(b, photo_id)
        try:
            path = b.guard.resolve(hit.path)  # inside the roots, symlinks resolved, or UnsafePathError
        except UnsafePathError as exc:
            raise NotFoundError(f"photo {photo_id} is not available") from exc
        if not path.is_file():
            raise NotFoundError(f"photo {photo_id} cannot be read any more")
        return FileResponse(path, filename=displayable(os.path.basename(path)))

    def close() -> None:
        if "backend" in state:
            state.pop("backend").close()

    app.router.on_shutdown.append(close)
    return app


def app_from_env() -> FastAPI:
    """The app of `dualens serve --workers N` (uvicorn imports it in each worker process)."""
    key_file = os.environ.get("DUALENS_API_KEY_FILE")
    key = read_api_key(key_file) if key_file else None
    return create_app(
        ApiSettings(data=os.environ.get("DUALENS_DATA"), api_key=key, config=UiConfig.from_env())
    )
