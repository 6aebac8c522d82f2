"""The shipped flow-matching model (notebook 10): it loads offline as the built-in model with its own
UNet and scheduler, stays within the size the Colab install carries, follows the words, and the
figures its card and notebook print are the measured ones."""
import json
import re
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

import sdlib
from sdlib.builtin import evaluate
from sdlib.models import flow

ROOT = Path(__file__).resolve().parent.parent
MB = 1e6


@pytest.fixture(scope="module")
def flow_sd():
    return sdlib.load_sd("builtin-flow", device="cpu")


def test_shipped_folder_fits_the_install():
    from safetensors import safe_open

    size = sum(f.stat().st_size for f in flow.FLOW_BUILTIN.rglob("*") if f.is_file()) / MB
    assert size <= 25
    with safe_open(next((flow.FLOW_BUILTIN / "unet").glob("*.safetensors")), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    assert sum(f.stat().st_size for f in (ROOT / "sdlib" / "models").rglob("*") if f.is_file()) / MB <= 120


def test_it_is_the_builtin_model_with_a_flow_unet_and_scheduler(sd, flow_sd, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert isinstance(flow_sd.scheduler, FlowMatchEulerDiscreteScheduler) and flow_sd.name == "builtin-flow"
    assert sdlib.processes.kind(flow_sd.scheduler) == "flow"
    for part in ("text_encoder", "vae"):
        assert all(torch.equal(a, b) for a, b in zip(getattr(sd, part).state_dict().values(),
                                                     getattr(flow_sd, part).state_dict().values()))
    assert flow_sd.unet.config.in_channels == 4 and flow_sd.unet.dtype == torch.float32
    assert not all(torch.equal(a, b) for a, b in zip(sd.unet.state_dict().values(), flow_sd.unet.state_dict().values()))


def test_a_missing_folder_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(flow, "FLOW_BUILTIN", tmp_path / "builtin-flow")
    with pytest.raises(sdlib.SDLibError, match=r"the built-in flow model is not in the package .*train_flow"):
        sdlib.load_sd("builtin-flow")


def test_held_out_prompts_are_followed(flow_sd):
    """Colour and shape of held-out pairs at 25 steps, CFG 7.5 (the card measures 48 prompts)."""
    res = evaluate.adherence(flow_sd, 7.5, n=16)
    assert res["colour_acc"] >= 0.85 and res["shape_acc"] >= 0.85


def card():
    return json.loads((flow.FLOW_BUILTIN / "evaluation.json").read_text())


def test_the_card_measurement_clears_the_floors():
    """Colour >= 90 % and shape >= 85 % at 25 steps on 48 held-out prompts; the few-step table has
    every sampler at 1, 2, 4, 8 and 25 steps."""
    res = card()
    assert res["n_adherence"] >= 48
    assert res["adherence"]["builtin-flow"]["colour_acc"] >= 0.9 and res["adherence"]["builtin-flow"]["shape_acc"] >= 0.85
    assert set(res["table"]) == {"flow Euler", "eps DDIM", "eps DPM++"}
    assert all(set(rows) == {"1", "2", "4", "8", "25"} for rows in res["table"].values())
    assert res["shift"] == flow.FLOW_SCHEDULER_CONFIG["shift"]


def printed(notebook):
    nb = json.loads((ROOT / "notebooks" / notebook).read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))


def test_notebook_10_states_the_four_step_comparison_as_measured():
    """The verdict line says closer/further as the card's numbers say, and they are the card's."""
    text = printed("10_flow_matching.ipynb")
    m = re.search(r"the card's 16 held-out prompts at 4 steps: flow (\d+\.\d) dB, DDIM (\d+\.\d) dB, DPM\+\+ (\d+\.\d) dB: "
                  r"the flow model is (closer to|further from) its own 100-step picture than the eps model with DDIM", text)
    assert m, text[-2000:]
    assert (m[4] == "closer to") == (float(m[1]) > float(m[2]))
    res = card()["table"]
    assert (float(m[1]), float(m[2]), float(m[3])) == tuple(round(res[k]["4"][2], 1) for k in ("flow Euler", "eps DDIM", "eps DPM++"))


def test_readme_states_the_shipped_size():
    weights = sum(f.stat().st_size for f in (flow.FLOW_BUILTIN / "unet").glob("*.safetensors")) / MB
    stated = re.search(r"`sdlib/models/builtin-flow/`[^.]*?(\d+\.\d) MB", (ROOT / "README.md").read_text())
    assert stated and abs(float(stated.group(1)) - weights) < 0.06
