"""Issue #27 item 3 (search side): a photo outside the roots ranks nothing, whatever names it.

A folder symlinked into a root pulled a photo from elsewhere into the collection. `/similar/{id}`
answers 404 for it; a composite query naming it (`#ID - "a dog"`, or its path) used to rank by its
vector all the same. Now every way of naming it gets the error /similar gives, through the Python
API, the CLI and the HTTP API, while photos inside the roots still serve as terms.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from indexer.core.errors import NotFoundError
from indexer.core.models import DualEncoder
from search import Searcher
from tests.helpers.faults import CliForkServer
from tests.helpers.search_collection import FakePhoto, make_collection
from ui.api import ApiSettings, create_app
from ui.backend import Backend
from ui.config import UiConfig

OUTSIDE_PHOTO = "link/away.jpg"
INSIDE_PHOTO = "d0/home.jpg"


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir: Path) -> DualEncoder:
    return DualEncoder(tiny_clip_dir)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, encoder: DualEncoder, module_db_url: str | None
) -> tuple[Path, Path, dict[str, int]]:
    """(data, root, ids by path relative to the root): ``root/link`` links to a sibling folder."""
    base = tmp_path_factory.mktemp("outside_terms")
    root, outside = base / "photos", base / "elsewhere"
    outside.mkdir(parents=True)
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    rng = np.random.default_rng(3)
    names = [OUTSIDE_PHOTO, INSIDE_PHOTO, *(f"d{i % 2}/p{i:02d}.jpg" for i in range(10))]
    photos = [FakePhoto(name, rng.standard_normal(encoder.dim)) for name in names]
    ids = make_collection(base / "data", root, photos, model_id=encoder.model_id, db_url=module_db_url)
    return base / "data", root, {p.path: i for p, i in zip(photos, ids, strict=True)}


@pytest.fixture
def searcher(world: tuple[Path, Path, dict[str, int]], encoder: DualEncoder) -> Iterator[Searcher]:
    with Searcher.open(world[0], encoder=encoder) as s:
        yield s


def _refusal(photo_id: int) -> str:
    return f"photo {photo_id} is not an indexed photo of this collection"


def test_the_python_api_refuses_an_outside_photo_as_an_id_or_path_term(searcher: Searcher, world) -> None:
    _, root, ids = world
    away = ids[OUTSIDE_PHOTO]
    for query in (f'#{away} - "a dog"', f"#{away}", f'@"{root / OUTSIDE_PHOTO}" + "a dog"'):
        with pytest.raises(NotFoundError, match=_refusal(away)):
            searcher.search(query, k=5)
    with pytest.raises(NotFoundError, match=_refusal(away)):
        searcher.similar(away, k=5)
    with pytest.raises(NotFoundError, match=_refusal(away)):
        searcher.search_image(root / OUTSIDE_PHOTO, k=5)


def test_a_photo_inside_the_roots_still_serves_as_a_term(searcher: Searcher, world) -> None:
    _, _, ids = world
    home = ids[INSIDE_PHOTO]
    hits = searcher.search(f'#{home} - 0.1:"a dog"', k=3)
    assert hits and hits[0].id == home
    assert all(h.id != ids[OUTSIDE_PHOTO] for h in searcher.search(f"#{home}", k=20))


def test_the_cli_refuses_an_outside_photo_term_in_one_line(cli: CliForkServer, world) -> None:
    data, _, ids = world
    away, home = ids[OUTSIDE_PHOTO], ids[INSIDE_PHOTO]
    refused = cli.run(["search", "--data", str(data), f'#{away} - "a dog"'])
    assert refused.rc == 1 and _refusal(away) in refused.output
    assert "Traceback" not in refused.output and len(refused.output.strip().splitlines()) == 1
    similar = cli.run(["similar", "--data", str(data), str(away)])
    assert similar.rc == 1 and _refusal(away) in similar.output
    served = cli.run(["search", "--data", str(data), f'#{home} - "a dog"', "--json"])
    assert served.rc == 0, served.output


def test_the_http_api_answers_an_outside_term_like_similar(searcher: Searcher, world) -> None:
    _, _, ids = world
    away = ids[OUTSIDE_PHOTO]
    backend = Backend(searcher, UiConfig())
    with TestClient(create_app(ApiSettings(), open_backend=lambda: backend)) as client:
        similar = client.get(f"/similar/{away}")
        composite = client.get("/search", params={"q": f'#{away} - "a dog"'})
        inside = client.get("/search", params={"q": f'#{ids[INSIDE_PHOTO]} - "a dog"'})
    assert similar.status_code == composite.status_code == 404
    assert composite.json()["error"]["message"] == _refusal(away)
    assert inside.status_code == 200 and inside.json()["hits"]
