"""Real result pages on which each relevance band's label is seen, scanned by axe as they are met.

Under the bands of search/relevance.py one query's first page rarely shows all three labels: a strong
match stands far out of its query's own scores, so the good matches beside it are few. The browser
tests therefore walk class queries of imagenet-sample and scan every page that shows a band not yet
seen, until strong, good and weak have each been seen (and scanned) on a real page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BANDS = ("strong", "good", "weak")
# class queries of imagenet-sample whose first photo stands far out (strong), copies and kin (good)
QUERIES = (
    "a photo of a bald eagle",
    "a photo of a great grey owl",
    "a photo of a tench",
    "an ostrich",
    "goldfish",
    "a bird",
    "a hammerhead shark",
)


def scan_band_pages(
    page: Any, server_url: str, wait_results: Callable[[Any], None], violations: Callable[[Any], list]
) -> tuple[dict[str, int], list[tuple[str, list]]]:
    """({band: labels seen over the scanned pages}, [(query, axe violations) of each scanned page])."""
    seen = dict.fromkeys(BANDS, 0)
    found: list[tuple[str, list]] = []
    for query in QUERIES:
        page.goto(f"{server_url}/?q={query.replace(' ', '+')}")
        wait_results(page)
        counts = {band: page.locator(f".dl-band-{band}").count() for band in BANDS}
        if any(counts[b] and not seen[b] for b in BANDS):
            found.append((query, violations(page)))
            seen = {b: seen[b] + counts[b] for b in BANDS}
        if all(seen.values()):
            break
    return seen, found
