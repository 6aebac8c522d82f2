"""The few-step explorer (notebook 10): each model at the slider's steps against its own many-step
picture, from one seed; a move regenerates."""
import matplotlib.pyplot as plt
import pytest
import torch

import sdlib
from sdlib.display import explore_flow as X
from sdlib.measure import metrics


@pytest.fixture(scope="module")
def flow_sd():
    return sdlib.load_sd("builtin-flow", device="cpu")


def test_render_is_generate_on_each_model_against_its_own_reference(sd, flow_sd, monkeypatch):
    monkeypatch.setattr(X, "REFERENCE_STEPS", 6)  # a cheap "many steps"
    X._REFERENCES.clear()
    out = X.render(sd, flow_sd, "a red circle", num_steps=2, seed=1)
    for name, model in (("eps", sd), ("flow", flow_sd)):
        picture, db = out[name]
        assert torch.equal(picture, sdlib.generate(model, "a red circle", num_steps=2, seed=1, output="tensor"))
        reference = sdlib.generate(model, "a red circle", num_steps=6, seed=1, output="tensor")
        assert db == pytest.approx(float(metrics.psnr(picture, reference)))


def test_explorer_controls_regenerate(sd, flow_sd, monkeypatch):
    monkeypatch.setattr(X, "REFERENCE_STEPS", 12)
    X._REFERENCES.clear()
    w = X.explorer(sd, flow_sd)  # opens at 8 steps
    assert [c.description for c in w.children[:-1]] == ["prompt", "steps", "seed"]
    first = w.result["flow"][0]
    w.children[1].value = 1
    assert sdlib.max_pixel_diff(w.result["flow"][0], first) > 0
    w.children[1].value = 12  # the reference's own step count: the same picture
    assert w.result["flow"][1] == float("inf") or w.result["flow"][1] > 60
    plt.close("all")
