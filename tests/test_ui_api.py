"""`dualens serve`: the HTTP JSON API, against a real uvicorn on a free loopback port."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.helpers.api_server import KEY, Server


@pytest.fixture(scope="module")
def api(api_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=api_server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ) as client:
        yield client


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return str(body["error"]["message"])


def test_search_returns_ranked_hits_with_metadata_and_pages(api: httpx.Client) -> None:
    first = api.get("/search", params={"q": "a photo", "k": 5}).json()
    assert first["query"] == "a photo" and len(first["hits"]) == 5
    assert [h["rank"] for h in first["hits"]] == [1, 2, 3, 4, 5]
    assert all(h["cosine"] >= first["hits"][-1]["cosine"] for h in first["hits"])
    second = api.get("/search", params={"q": "a photo", "k": 5, "offset": 5}).json()
    assert [h["rank"] for h in second["hits"]] == [6, 7, 8, 9, 10]
    assert not {h["id"] for h in first["hits"]} & {h["id"] for h in second["hits"]}


def test_filters_restrict_the_hits(api: httpx.Client) -> None:
    every = api.get("/search", params={"q": "a photo", "k": 50}).json()["hits"]
    folder = Path(every[0]["path"]).parent.name
    some = api.get("/search", params={"q": "a photo", "k": 50, "folder": folder}).json()["hits"]
    assert some and all(Path(h["path"]).parent.name == folder for h in some) and len(some) < len(every)
    assert api.get("/search", params={"q": "a photo", "type": "png"}).json()["hits"] == []


def test_similar_by_id_and_by_upload_and_classify(api: httpx.Client) -> None:
    top = api.get("/search", params={"q": "a photo", "k": 1}).json()["hits"][0]
    similar = api.get(f"/similar/{top['id']}", params={"k": 3}).json()["hits"]
    assert len(similar) == 3 and top["id"] not in {h["id"] for h in similar}
    original = api.get(f"/photos/{top['id']}/original")
    assert original.status_code == 200
    uploaded = api.post(
        "/similar", files={"image": ("q.jpg", original.content, "image/jpeg")}, params={"k": 1}
    )
    assert uploaded.json()["hits"][0]["id"] == top["id"]  # the same photo first
    labels = api.get(f"/classify/{top['id']}", params={"labels": "cat,dog,car"}).json()["labels"]
    assert {x["label"] for x in labels} == {"cat", "dog", "car"}
    assert abs(sum(x["probability"] for x in labels) - 1) < 1e-4


def test_photo_metadata_thumbnail_stats_and_health(api: httpx.Client) -> None:
    top = api.get("/search", params={"q": "a photo", "k": 1}).json()["hits"][0]
    meta = api.get(f"/photos/{top['id']}").json()
    assert meta["path"] == top["path"] and meta["width"] > 0
    thumb = api.get(f"/photos/{top['id']}/thumbnail")
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 400
    assert api.get("/stats").json()["photos"] == 12
    assert api.get("/health").json()["status"] == "ok"
    assert "/search" in api.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("method", "path", "params", "status"),
    [
        ("GET", "/search", {}, 422),  # no query
        ("GET", "/search", {"q": ""}, 422),
        ("GET", "/search", {"q": "x" * 5000}, 422),
        ("GET", "/search", {"q": "a", "k": 0}, 422),
        ("GET", "/search", {"q": "a", "k": 100000}, 422),
        ("GET", "/search", {"q": "a", "offset": -1}, 422),
        ("GET", "/search", {"q": "a", "after": "2020-13"}, 400),
        ("GET", "/search", {"q": "a", "after": "2021", "before": "2020"}, 400),
        ("GET", "/search", {"q": '"dog" - "dog"'}, 400),
        ("GET", "/search", {"q": '@"/etc/passwd" + "a"'}, 400),  # a path in a query is never opened
        ("GET", "/search", {"q": "a", "min_score": 3}, 422),
        ("GET", "/search", {"q": "a", "min_match": "great"}, 422),
        ("GET", "/similar/999999", {}, 404),
        ("GET", "/similar/abc", {}, 422),
        ("GET", "/photos/999999", {}, 404),
        ("GET", "/photos/-1/original", {}, 404),
        ("GET", "/classify/2", {"labels": ",,"}, 400),
        ("GET", "/nowhere", {}, 404),
        ("DELETE", "/photos/1", {}, 405),  # read-only
    ],
)
def test_every_bad_request_is_a_4xx_with_a_json_error(
    api: httpx.Client, method: str, path: str, params: dict, status: int
) -> None:
    _error(api.request(method, path, params=params), status)


def test_bad_uploads_are_refused(api: httpx.Client) -> None:
    _error(api.post("/similar", files={"image": ("x.jpg", b"not an image", "image/jpeg")}), 422)
    _error(api.post("/similar"), 422)
    big = b"\xff" * (20 * 1024 * 1024 + 10)
    _error(api.post("/similar", files={"image": ("big.jpg", big, "image/jpeg")}), 413)  # too large: 413


def test_files_outside_the_roots_are_never_served(api: httpx.Client, api_world: tuple[Path, Path]) -> None:
    names = {
        Path(h["path"]).name for h in api.get("/search", params={"q": "a photo", "k": 50}).json()["hits"]
    }
    assert "link-out.jpg" not in names
    for path in ("/photos/1/../../../etc/passwd", "/photos/%2e%2e%2fsecret.txt/original"):
        assert api.get(path).status_code in (404, 422)


def test_the_api_key_is_enforced(api: httpx.Client) -> None:
    url = str(api.base_url)
    assert _error(httpx.get(f"{url}/search", params={"q": "a"}), 401).startswith("a valid API key")
    wrong = {"Authorization": "Bearer " + "x" * 24}
    _error(httpx.get(f"{url}/search", params={"q": "a"}, headers=wrong), 401)
    ok = httpx.get(f"{url}/search", params={"q": "a"}, headers={"X-API-Key": KEY})
    assert ok.status_code == 200
    assert httpx.get(f"{url}/health").status_code == 200  # for load balancers


def test_serve_without_a_collection_or_on_a_taken_port_is_one_line(
    tmp_path: Path, api_world: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from ui.cli import main

    assert main(["serve", "--data", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().err.startswith("dualens: error: no collection in")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main(["serve", "--data", str(api_world[0]), "--port", port]) == 2
    assert "cannot serve on 127.0.0.1:" in capsys.readouterr().err
    short = tmp_path / "short.key"
    short.write_text("abc")
    assert main(["serve", "--data", str(api_world[0]), "--api-key-file", str(short)]) == 2
    assert "too short" in capsys.readouterr().err


def test_the_openapi_schema_survives_fuzzing_without_a_server_error(api: httpx.Client) -> None:
    """schemathesis sends schema-derived (and schema-breaking) requests: never a 5xx."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{str(api.base_url).rstrip('/')}/openapi.json")
    failures: list[str] = []
    statuses: list[int] = []
    operations = list(schema.get_all_operations())
    for operation in operations:
        op = operation.ok()

        @settings(max_examples=25, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=op.as_strategy())
        def check(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(headers={"Authorization": f"Bearer {KEY}"})
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

        check()
    assert failures == []
    assert len(operations) >= 9 and len(statuses) >= 5 * len(operations)
    assert {200, 422} <= set(statuses)  # both accepted and refused requests were sent


def test_result_pages_carry_the_total_and_whether_more_follow(api: httpx.Client) -> None:
    first = api.get("/search", params={"q": "a photo", "k": 5}).json()
    assert (first["total"], first["has_more"]) == (12, True)
    last = api.get("/search", params={"q": "a photo", "k": 5, "offset": 10}).json()
    assert (len(last["hits"]), last["total"], last["has_more"]) == (2, 12, False)
    similar = api.get(f"/similar/{first['hits'][0]['id']}", params={"k": 3}).json()
    assert similar["total"] == 11 and similar["has_more"] is True  # the photo itself left out
