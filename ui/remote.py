"""The page's backend when it is a client of a `dualens serve` (``dualens ui --api URL``).

:class:`RemoteBackend` answers what :class:`~ui.backend.Backend` answers (stats, facets, result
pages, photo metadata, thumbnail files) over the HTTP JSON API, so many UI replicas share one search
service and none of them loads the model or the index. The API's JSON errors come back as the typed
errors the page already shows; an unreachable service is one sentence, never a traceback.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from PIL import Image
from pydantic import BaseModel, ValidationError

from indexer.core.errors import CollectionError, DualensError, NotFoundError, QueryError, UsageError
from search import DuplicateGroup, Facets, Hit, QuarantineReport, Stats, Understood, UndoReport
from ui.backend import ResultPage, SearchRequest
from ui.config import UiConfig
from ui.schema import (
    MAX_K,
    ErrorBody,
    FacetsOut,
    FilterParams,
    Health,
    Page,
    StatsOut,
    Unauthorised,
    error_class,
)

log = logging.getLogger(__name__)
_Answer = TypeVar("_Answer", bound=BaseModel)
Params = list[tuple[str, str]]

API_URL_ENV = "DUALENS_API_URL"
API_KEY_FILE_ENV = "DUALENS_API_KEY_FILE"
TIMEOUT_S = 60.0
# the HTTP API is read-only: moving files is for the machine that holds the photos
_LOCAL_ONLY = (
    "reviewing duplicates needs the collection itself: run `dualens ui` (without --api) where it lives"
)


def _error_for(response: httpx.Response) -> DualensError:
    """The typed error a JSON error answer stands for (ui/schema.py's table, read backwards)."""
    try:
        error = ErrorBody.model_validate(response.json()).error
        code, message = error.code, error.message
    except (ValueError, ValidationError):
        code, message = "", f"the search service answered HTTP {response.status_code}"
    found = error_class(response.status_code, code)
    if found is Unauthorised:
        return Unauthorised(f"the search service refused the API key: {message}")
    if found is not None and found is not CollectionError:
        return found(message)
    # anything else (a request the service's validation refused, a server fault) is a fault of this
    # page or of the service, never the user's: its raw text goes to the log, one sentence to the page
    log.warning("the search service answered HTTP %s: %s", response.status_code, message)
    if 400 <= response.status_code < 500:
        return QueryError(
            f"the search service could not answer this request (HTTP {response.status_code}); "
            "try another search or reload the page"
        )
    return CollectionError(f"the search service failed (HTTP {response.status_code}); try again in a moment")


class RemoteBackend:
    """The UI backend over a `dualens serve` at ``url`` (thumbnails cached in a local folder)."""

    def __init__(self, url: str, config: UiConfig, *, api_key: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.config = config
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT_S)
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._facets: Facets | None = None
        self._cache = Path(tempfile.mkdtemp(prefix="dualens-ui-thumbs-"))

    @classmethod
    def open(cls, url: str, config: UiConfig | None = None, api_key: str | None = None) -> RemoteBackend:
        """Connect and check the service answers (a DualensError, one sentence, when it does not)."""
        backend = cls(url, config or UiConfig.from_env(), api_key=api_key)
        try:
            backend.refresh()
            backend.stats()  # an API key problem shows now, not at the first query
        except BaseException:
            backend.close()
            raise
        return backend

    # ------------------------------------------------------------------ HTTP
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise CollectionError(f"the search service at {self.url} did not answer in time") from exc
        except httpx.HTTPError as exc:
            log.warning("cannot reach the search service at %s: %s", self.url, exc)
            raise CollectionError(
                f"the dualens service at {self.url} is not answering; check that `dualens serve` is "
                "running there, then reload this page"
            ) from exc
        if response.status_code >= 400:
            raise _error_for(response)
        return response

    def _json(self, path: str, params: Params | None = None) -> dict[str, Any]:
        return self._parsed(self._request("GET", path, params=params))

    def _parsed(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CollectionError(f"the search service at {self.url} sent an unexpected answer")
        return body

    def _read(self, model: type[_Answer], path: str, params: Params | None = None) -> _Answer:
        return self._model(model, self._json(path, params))

    def _model(self, model: type[_Answer], body: dict[str, Any]) -> _Answer:
        try:
            return model.model_validate(body)
        except ValidationError as exc:
            raise CollectionError(f"the search service at {self.url} sent an unexpected answer") from exc

    # ------------------------------------------------------------------ the Backend interface
    def refresh(self) -> bool:
        """Whether the service's index generation changed since the last call."""
        generation = self._read(Health, "/health").generation
        with self._lock:
            changed = self._generation is not None and generation != self._generation
            if changed or self._generation is None:
                self._facets = None
            self._generation = generation
        return changed

    def stats(self) -> Stats:
        return self._read(StatsOut, "/stats").to_stats()

    def facets(self) -> Facets:
        with self._lock:
            if self._facets is not None:
                return self._facets
        found = self._read(FacetsOut, "/facets").to_facets()
        with self._lock:
            self._facets = found
        return found

    def run(self, request: SearchRequest, image: Image.Image | None = None) -> ResultPage:
        """One page of hits, as the service's Backend.run answers it (``has_more`` and ``total`` too;
        the timeline from ``/timeline``); a page longer than the API's ``k`` limit is asked for in
        several requests."""
        limit = max(1, min(request.limit, self.config.max_results))
        send = self._sender(request, image)
        hits: list[Hit] = []
        offset, more, total, understood = request.offset, True, None, None
        wanted = [("sort", request.sort)] + ([("literal", "true")] if request.literal else [])
        if request.kind == "timeline":
            wanted = []  # a listing has no ranking to sort or query to read
        while more and len(hits) < limit:
            k = min(MAX_K, limit - len(hits))
            params = [("k", str(k)), ("offset", str(offset)), *FilterParams.of(request.filters).params()]
            answer = send(params + wanted)
            page = self._model(Page, answer)
            hits += [Hit.from_json(h) for h in page.hits]
            offset, more, total = offset + k, page.has_more, page.total
            if isinstance(answer.get("understood"), dict):
                understood = Understood.from_json(answer["understood"])
        return ResultPage(hits=hits[:limit], has_more=more, total=total, understood=understood)

    def _sender(
        self, request: SearchRequest, image: Image.Image | None
    ) -> Callable[[Params], dict[str, Any]]:
        """What asks the service for one page of ``request``, given the paging and filter parameters."""
        if request.kind == "text":
            if not request.text.strip():
                raise QueryError("the query is empty; describe the photo you are looking for")
            return lambda params: self._json("/search", [("q", request.text), *params])
        if request.kind == "timeline":
            return lambda params: self._json("/timeline", params)
        if request.kind == "similar":
            if request.photo_id is None:
                raise QueryError("no photo chosen")
            path = f"/similar/{int(request.photo_id)}"
            return lambda params: self._json(path, params)
        if request.kind == "image":
            if image is None:
                raise QueryError("no uploaded photo")
            upload = io.BytesIO()
            image.convert("RGB").save(upload, format="JPEG", quality=95)
            files = {"image": ("upload.jpg", upload.getvalue(), "image/jpeg")}
            return lambda params: self._parsed(self._request("POST", "/similar", params=params, files=files))
        raise QueryError(f"unknown request kind {request.kind!r}")

    def photo(self, photo_id: int) -> Hit | None:
        try:
            return Hit.from_json(self._json(f"/photos/{int(photo_id)}"))
        except NotFoundError:
            return None

    def thumbnail(
        self, hit: Hit, *, preview: bool = False, px: int | None = None, square: bool = True
    ) -> Path | None:
        """A local copy of the service's thumbnail (per photo version), None when it has none."""
        tag = "preview" if preview else f"grid{px or ''}{'' if square else 'f'}"
        size = {"w": str(px)} if px and not preview else {}
        if not square and not preview:
            size["square"] = "false"
        target = self._cache / f"{hit.id}-{int(hit.mtime.timestamp() * 1e6)}-{hit.size}-{tag}.jpg"
        if target.is_file():
            return target
        try:
            response = self._request(
                "GET", f"/photos/{hit.id}/thumbnail", params={"preview": str(preview).lower(), **size}
            )
        except NotFoundError:
            return None
        fd, tmp = tempfile.mkstemp(dir=self._cache, prefix=".tmp-", suffix=".jpg")
        with os.fdopen(fd, "wb") as fh:
            fh.write(response.content)
        os.replace(tmp, target)
        return target

    def original(self, hit: Hit) -> Path | None:
        return None  # the API serves previews, not the photos themselves

    def duplicates(self) -> list[DuplicateGroup]:
        raise UsageError(_LOCAL_ONLY)

    def quarantine(self, photo_ids: list[int], folder: Path, *, copies_only: bool = True) -> QuarantineReport:
        raise UsageError(_LOCAL_ONLY)

    def undo(self, manifest: Path) -> UndoReport:
        raise UsageError(_LOCAL_ONLY)

    def close(self) -> None:
        self._client.close()
        for leftover in self._cache.glob("*"):
            leftover.unlink(missing_ok=True)
        self._cache.rmdir()
