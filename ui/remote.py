"""The page's backend when it is a client of a `dualens serve` (``dualens ui --api URL``).

:class:`RemoteBackend` answers what :class:`~ui.backend.Backend` answers (stats, facets, result
pages, photo metadata, thumbnail files) over the HTTP JSON API, so many UI replicas share one search
service and none of them loads the model or the index. The API's JSON errors come back as the typed
errors the page already shows; an unreachable service is one sentence, never a traceback.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from indexer.core.errors import (
    CollectionError,
    DualensError,
    ImageError,
    NotFoundError,
    QueryError,
    UsageError,
)
from search import DuplicateGroup, Facets, Filters, FolderOption, Hit, PlaceOption, QuarantineReport, Stats
from ui.backend import ResultPage, SearchRequest
from ui.config import UiConfig

API_URL_ENV = "DUALENS_API_URL"
API_KEY_FILE_ENV = "DUALENS_API_KEY_FILE"
TIMEOUT_S = 60.0
# the HTTP API is read-only: moving files is for the machine that holds the photos
_LOCAL_ONLY = (
    "reviewing duplicates needs the collection itself: run `dualens ui` (without --api) where it lives"
)


def filter_params(filters: Filters) -> list[tuple[str, str]]:
    """The API's query parameters for a set of filters."""
    params: list[tuple[str, str]] = []
    if filters.folder:
        params.append(("folder", str(filters.folder)))
    if filters.date_from:
        params.append(("after", filters.date_from.isoformat()))
    if filters.date_to:
        params.append(("before", filters.date_to.isoformat()))
    params += [("type", t) for t in filters.file_types]
    if filters.min_score is not None:
        params.append(("min_score", repr(float(filters.min_score))))
    if filters.min_match:
        params.append(("min_match", filters.min_match))
    if filters.place:
        params.append(("place", filters.place))
    return params


def _error_for(response: httpx.Response) -> DualensError:
    """The typed error a JSON error answer stands for."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "", f"the search service answered HTTP {response.status_code}"
    if response.status_code == 401:
        return UsageError(f"the search service refused the API key: {message}")
    if response.status_code == 404:
        return NotFoundError(message)
    if response.status_code == 422 and code == "bad_request":  # the service could not read the image
        return ImageError(message)
    if 400 <= response.status_code < 500:
        return QueryError(message)
    return CollectionError(f"the search service failed: {message}")


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
            raise CollectionError(
                f"cannot reach the search service at {self.url} ({exc}); is `dualens serve` running there?"
            ) from exc
        if response.status_code >= 400:
            raise _error_for(response)
        return response

    def _json(self, path: str, params: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        body = self._request("GET", path, params=params).json()
        if not isinstance(body, dict):
            raise CollectionError(f"the search service at {self.url} sent an unexpected answer")
        return body

    # ------------------------------------------------------------------ the Backend interface
    def refresh(self) -> bool:
        """Whether the service's index generation changed since the last call."""
        generation = int(self._json("/health")["generation"])
        with self._lock:
            changed = self._generation is not None and generation != self._generation
            if changed or self._generation is None:
                self._facets = None
            self._generation = generation
        return changed

    def stats(self) -> Stats:
        s = self._json("/stats")
        last = s.get("last_indexed_at")
        return Stats(
            n_indexed=int(s["photos"]),
            n_failed=int(s["failed"]),
            model_id=s.get("model"),
            dim=s.get("dim"),
            generation=int(s["generation"]),
            last_indexed_at=datetime.fromisoformat(last) if last else None,
            roots=tuple(Path(r) for r in s.get("roots", ())),
            n_pending=int(s.get("pending") or 0),
        )

    def facets(self) -> Facets:
        with self._lock:
            if self._facets is not None:
                return self._facets
        f = self._json("/facets")
        found = Facets(
            folders=tuple(FolderOption(**option) for option in f["folders"]),
            file_types=tuple(f["file_types"]),
            first_date=date.fromisoformat(f["first_date"]) if f.get("first_date") else None,
            last_date=date.fromisoformat(f["last_date"]) if f.get("last_date") else None,
            places=tuple(PlaceOption(**option) for option in f.get("places", [])),
        )
        with self._lock:
            self._facets = found
        return found

    def run(self, request: SearchRequest, image: Image.Image | None = None) -> ResultPage:
        """One page of hits; one extra hit is asked for to know whether "Show more" has anything."""
        limit = max(1, min(request.limit, self.config.max_results))
        params = [("k", str(limit + 1)), *filter_params(request.filters)]
        if request.kind == "text":
            if not request.text.strip():
                raise QueryError("the query is empty; describe the photo you are looking for")
            body = self._json("/search", [("q", request.text), *params])
        elif request.kind == "similar":
            if request.photo_id is None:
                raise QueryError("no photo chosen")
            body = self._json(f"/similar/{int(request.photo_id)}", params)
        elif request.kind == "image":
            if image is None:
                raise QueryError("no uploaded photo")
            upload = io.BytesIO()
            image.convert("RGB").save(upload, format="JPEG", quality=95)
            files = {"image": ("upload.jpg", upload.getvalue(), "image/jpeg")}
            body = self._request("POST", "/similar", params=params, files=files).json()
        else:
            raise QueryError(f"unknown request kind {request.kind!r}")
        hits = [Hit.from_json(h) for h in body["hits"]]
        return ResultPage(hits=hits[:limit], has_more=len(hits) > limit)

    def photo(self, photo_id: int) -> Hit | None:
        try:
            return Hit.from_json(self._json(f"/photos/{int(photo_id)}"))
        except NotFoundError:
            return None

    def thumbnail(self, hit: Hit, *, preview: bool = False) -> Path | None:
        """A local copy of the service's thumbnail (per photo version), None when it has none."""
        tag = "preview" if preview else "grid"
        target = self._cache / f"{hit.id}-{int(hit.mtime.timestamp() * 1e6)}-{hit.size}-{tag}.jpg"
        if target.is_file():
            return target
        try:
            response = self._request(
                "GET", f"/photos/{hit.id}/thumbnail", params={"preview": str(preview).lower()}
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

    def quarantine(self, photo_ids: list[int], folder: Path) -> QuarantineReport:
        raise UsageError(_LOCAL_ONLY)

    def close(self) -> None:
        self._client.close()
        for leftover in self._cache.glob("*"):
            leftover.unlink(missing_ok=True)
        self._cache.rmdir()
