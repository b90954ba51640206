"""Settings of the web UI: page size, thumbnail sizes and upload limits.

Every value can be overridden by an environment variable (``DUALENS_UI_*``) so that
``dualens ui`` and the tests can tune them without touching code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from indexer.core.errors import UsageError

ENV_PREFIX = "DUALENS_UI_"
# `dualens ui --api URL`: the page is a client of that service (ui/remote.py); named here, where
# `dualens ui` and the page read them without loading the HTTP client
API_URL_ENV = "DUALENS_API_URL"
API_KEY_FILE_ENV = "DUALENS_API_KEY_FILE"
# the search box's hint, drawn by the page (ui/views.py) and while the collection loads (ui/warmup.py)
SEARCH_PLACEHOLDER = 'Describe a photo: a red sports car · "beach" - "people" · 2:"sunset" + "boat"'


@dataclass(frozen=True)
class UiConfig:
    page_size: int = 48  # results added by each "Show more" (the justified grid shows >= 30 above the fold)
    max_results: int = 480  # paging stops here
    thumb_px: int = 384  # square grid thumbnail edge: sharp at 2x on a desktop, 3x on a phone
    preview_px: int = 1280  # longest edge of the detail preview
    max_upload_bytes: int = 20 * 1024 * 1024
    max_upload_pixels: int = 50_000_000
    query_max_chars: int = 500
    zip_max_mb: int = 200  # a selection's originals are zipped in memory up to this size

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> UiConfig:
        """Defaults, overridden by ``DUALENS_UI_PAGE_SIZE=12`` style variables (bad values ignored)."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for field in fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is not None and raw.strip().isdigit() and int(raw) > 0:
                values[field.name] = int(raw)
        return cls(**values)

    @property
    def max_upload_mb(self) -> int:
        """The same limit for Streamlit's own upload check (whole megabytes, at least 1)."""
        return max(1, -(-self.max_upload_bytes // (1024 * 1024)))


def read_api_key(path: str) -> str:
    """The API key in a file (whitespace around it stripped).

    UsageError, one line, when the file is unreadable or not UTF-8 text, and when the key is too
    short or not printable ASCII: HTTP headers carry ASCII, so such a key could never be sent.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            key = fh.read().strip()
    except OSError as exc:
        raise UsageError(f"cannot read the API key file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"the API key file {path} is not UTF-8 text (byte {exc.start})") from exc
    if len(key) < 16:
        raise UsageError(f"the API key in {path} is too short (at least 16 characters)")
    if not (key.isascii() and key.isprintable()):
        raise UsageError(
            f"the API key in {path} has characters an HTTP header cannot carry: use printable ASCII only"
        )
    return key
