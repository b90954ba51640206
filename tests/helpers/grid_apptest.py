"""The justified grid (ui/grid_component.py) under Streamlit's AppTest, which cannot run a component's
JavaScript: what each grid was given (its photos, in order) is read from the page's elements, and a
user's action (open, similar, select) is sent as the browser sends it, a trigger value of the grid's
``action`` event, so it goes through Streamlit's widget machinery to the grid's own callback.
"""

from __future__ import annotations

import json
from typing import Any

from streamlit.components.v2.bidi_component.main import _make_trigger_id
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.testing.v1 import AppTest

NAME = "dualens_grid"


def _grids(node: Any) -> list[Any]:
    found = []
    proto = getattr(node, "proto", None)
    if getattr(node, "type", None) == "bidi_component" and getattr(proto, "component_name", "") == NAME:
        found.append(proto)
    for child in getattr(node, "children", {}).values():
        found += _grids(child)
    return found


def grids(at: AppTest) -> list[dict[str, Any]]:
    """The data each grid on the page was given, top to bottom (its ``id`` added)."""
    return [{**json.loads(p.json), "id": p.id} for p in _grids(at._tree)]


def items(at: AppTest) -> list[dict[str, Any]]:
    """Every photo the grids show, in page order."""
    return [item for grid in grids(at) for item in grid["items"]]


def ids(at: AppTest) -> list[int]:
    return [int(item["id"]) for item in items(at)]


def names(at: AppTest) -> list[str]:
    return [str(item["name"]) for item in items(at)]


def act(at: AppTest, photo_id: int, kind: str, **extra: Any) -> AppTest:
    """Do ``kind`` ("open", "similar", "select") on a photo of a grid, as the browser would; runs."""
    grid = next(g for g in grids(at) if any(int(i["id"]) == photo_id for i in g["items"]))
    states = at._tree.get_widget_states()
    trigger = states.widgets.add()
    trigger.id = _make_trigger_id(grid["id"], "events")
    value = {"kind": kind, "id": photo_id, **extra}
    trigger.json_trigger_value = json.dumps([{"event": "action", "value": value}])
    return at._run(WidgetStates(widgets=list(states.widgets)))


def open_photo(at: AppTest, photo_id: int) -> AppTest:
    return act(at, photo_id, "open")


def similar(at: AppTest, photo_id: int) -> AppTest:
    return act(at, photo_id, "similar")


def select(at: AppTest, photo_ids: list[int], on: bool = True) -> AppTest:
    return act(at, photo_ids[0], "select", ids=photo_ids, on=on)
