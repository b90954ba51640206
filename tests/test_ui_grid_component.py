"""The Python side of the justified grid (ui/grid_component.py): what it gives the browser, and how it
treats what the browser sends back (only photos of the grid count; anything malformed is ignored)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from search import Hit
from ui import grid_component


def _hit(photo_id: int = 7, path: str = "/p/<b>a<i>.jpg", **kw: Any) -> Hit:
    base: dict[str, Any] = dict(
        id=photo_id,
        path=path,
        cosine=0.3,
        logit=1.0,
        probability=0.5,
        width=400,
        height=300,
        mtime=datetime(2020, 3, 1),
        size=1000,
        file_type="jpg",
        taken_at=None,
        camera_make=None,
        camera_model=None,
    )
    base.update(kw)
    return Hit(**{k: v for k, v in base.items() if k in Hit.__dataclass_fields__})


def test_an_element_carries_text_only_and_the_photos_shape() -> None:
    item = grid_component.element(_hit(relevance="strong"), "/media/x.jpg", (300, 400), "alt", "2020-03-01")
    assert item["name"] == "<b>a<i>.jpg"  # set as text by the browser, never as HTML
    assert (item["w"], item["h"]) == (300, 400) and item["band"] == "strong"
    assert item["bandLabel"] == "Strong match" and item["words"] == []
    json.dumps(item)  # JSON-safe


def test_an_unknown_band_is_not_shown() -> None:
    item = grid_component.element(_hit(relevance="maybe"), "/m.jpg", (1, 1), "a", "d")
    assert item["band"] == "" and item["bandLabel"] == ""


def test_the_grid_data_keeps_only_the_selected_photos_it_shows() -> None:
    items = [grid_component.element(_hit(i), "/m.jpg", (1, 1), "a", "d") for i in (1, 2, 3)]
    data = grid_component.grid_data(items, [3, 9, 1], show_names=True, label="Photos")
    assert data["selected"] == [3, 1] and data["showNames"] is True and len(data["items"]) == 3


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []
    monkeypatch.setattr(grid_component.state, "show_detail", lambda pid: seen.append(("open", pid)))
    monkeypatch.setattr(grid_component.state, "show_similar", lambda pid: seen.append(("similar", pid)))
    monkeypatch.setattr(
        grid_component.selection, "choose", lambda ids, on: seen.append(("select", (ids, on)))
    )
    return seen


def test_actions_drive_the_same_callbacks_as_the_buttons(calls: list[tuple[str, object]]) -> None:
    grid_component.handle({"kind": "open", "id": 2}, [1, 2, 3])
    grid_component.handle({"kind": "similar", "id": "3"}, [1, 2, 3])
    grid_component.handle({"kind": "select", "ids": [1, 2], "on": True}, [1, 2, 3])
    grid_component.handle({"kind": "select", "ids": [2], "on": False}, [1, 2, 3])
    assert calls == [("open", 2), ("similar", 3), ("select", ([1, 2], True)), ("select", ([2], False))]


@pytest.mark.parametrize(
    "action",
    [
        None,
        "open",
        {"kind": "open", "id": 99},  # not a photo of this grid
        {"kind": "open", "id": "1; DROP"},
        {"kind": "open", "id": True},
        {"kind": "delete", "id": 1},
        {"kind": "similar"},
    ],
)
def test_malformed_or_foreign_actions_do_nothing(calls: list[tuple[str, object]], action: object) -> None:
    grid_component.handle(action, [1, 2, 3])
    assert calls == []


def test_a_selection_keeps_only_photos_of_the_grid(calls: list[tuple[str, object]]) -> None:
    grid_component.handle({"kind": "select", "ids": [1, 99, "x", 3], "on": "yes"}, [1, 2, 3])
    assert calls == [("select", ([1, 3], False))]  # "on" must be true itself
