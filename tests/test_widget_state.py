"""Committed notebooks carry their explorers' last state, so they show when opened unexecuted.

JupyterLab (with the widget manager's saveState on, as `./course.sh lab` sets it), nbviewer, GitHub's
renderer and the course website draw a widget from the notebook's saved widget state
(`metadata.widgets`, written by nbclient in tools/execute_notebooks.py). A view whose model is
missing from it shows "Error displaying widget: model not found"; an Output model with no outputs
shows an explorer without its picture. Checked here for every notebook with an explorer.
"""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STATE_MIME = "application/vnd.jupyter.widget-state+json"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def views(nb):
    return [o["data"][VIEW_MIME]["model_id"] for c in nb["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", []) if VIEW_MIME in o.get("data", {})]


def reachable(state, model_id):
    """Every model id that `model_id` refers to, itself included (children, layouts, styles, ...)."""
    seen, todo = set(), [model_id]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        if m in state:
            todo += re.findall(r"IPY_MODEL_([0-9a-f]{32})", json.dumps(state[m]["state"]))
    return seen


WITH_WIDGETS = [p for p in NOTEBOOKS if views(json.loads(p.read_text()))]


def test_the_explorer_notebooks_are_the_ones_with_widgets():
    assert [p.name[:2] for p in WITH_WIDGETS] == ["01", "02", "03", "05", "09", "10", "11"]


@pytest.mark.parametrize("path", WITH_WIDGETS, ids=lambda p: p.name[:2])
def test_every_widget_view_is_in_the_saved_state_with_its_picture(path):
    nb = json.loads(path.read_text())
    saved = nb["metadata"]["widgets"][STATE_MIME]
    assert (saved["version_major"], saved["version_minor"]) == (2, 0)
    state = saved["state"]
    for view in views(nb):
        models = reachable(state, view)
        missing = [m for m in models if m not in state]
        assert not missing, f"{path.name}: view {view} refers to models not saved: {missing}"
        outputs = [state[m]["state"].get("outputs", []) for m in models if state[m]["model_name"] == "OutputModel"]
        assert outputs and all(any("image/png" in o.get("data", {}) for o in out) for out in outputs), \
            f"{path.name}: the explorer's Output widget saved no picture"
