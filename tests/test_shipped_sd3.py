"""The shipped SD3 in miniature (notebook 11): diffusers' own StableDiffusion3Pipeline loads its folder
offline (no T5), it fits the install, follows colour and shape words at the pipeline's defaults, and
the figures its card and notebook print are the measured ones."""
import json
import re
from pathlib import Path

import pytest
import torch

import sdlib
from sdlib.builtin import evaluate, evaluate_sd3
from sdlib.models import sd3

ROOT = Path(__file__).resolve().parent.parent
MB = 1e6


@pytest.fixture(scope="module")
def sd3_sd():
    return sdlib.load_sd("builtin-sd3", device="cpu")


def card():
    return json.loads((sd3.SD3_BUILTIN / "evaluation.json").read_text())


def test_shipped_folder_fits_the_install():
    from safetensors import safe_open

    size = sum(f.stat().st_size for f in sd3.SD3_BUILTIN.rglob("*") if f.is_file()) / MB
    assert size <= 25
    for part in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        with safe_open(next((sd3.SD3_BUILTIN / part).glob("*.safetensors")), "pt") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}, part
    assert sum(f.stat().st_size for f in (ROOT / "sdlib" / "models").rglob("*") if f.is_file()) / MB <= 120


def test_diffusers_loads_the_folder_offline_and_draws_what_sdlib_draws(sd3_sd, monkeypatch):
    from diffusers import StableDiffusion3Pipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = StableDiffusion3Pipeline.from_pretrained(sd3.SD3_BUILTIN, text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.transformer.dtype == torch.float32 and pipe.text_encoder.dtype == torch.float32
    expected = pipe("a red circle on the left", num_inference_steps=6, guidance_scale=7.0, output_type="pt",
                    generator=torch.Generator().manual_seed(0)).images
    got = sdlib.generate(sd3_sd, "a red circle on the left", num_steps=6, guidance_scale=7.0, seed=0, output="tensor")
    assert (got - expected).abs().max() <= 1e-5


def test_a_missing_folder_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(sd3, "SD3_BUILTIN", tmp_path / "builtin-sd3")
    with pytest.raises(sdlib.SDLibError, match=r"the built-in SD3 is not in the package .*train_sd3"):
        sdlib.load_sd("builtin-sd3")


def test_held_out_prompts_are_followed_as_the_card_says(sd3_sd):
    """Colour and shape of 12 held-out pairs at the pipeline's defaults (28 steps, guidance 7.0),
    live: within the noise of 12 prompts of the card's 48-prompt figures (a picture is 8 %)."""
    res = evaluate.adherence(sd3_sd, 7.0, n=12, num_steps=28)
    fig = card()["models"]["builtin-sd3"]
    assert res["colour_acc"] >= fig["colour"] - 0.2 and res["shape_acc"] >= fig["shape"] - 0.2, (res, fig)


def test_the_card_is_measured_at_the_defaults_on_48_prompts():
    res = card()
    assert res["n"] >= 48 and res["defaults"]["builtin-sd3"] == [28, 7.0] and res["defaults"]["builtin-flow"] == [25, 7.5]
    assert set(res["models"]) == {"builtin-flow", "builtin-sd3"} and res["floors"] == evaluate_sd3.FLOORS
    for fig in res["models"].values():
        assert {"colour", "shape", "side", "two_object", "seconds", "params_million", "gflop_per_call"} <= set(fig)


@pytest.mark.xfail(strict=True, reason="issue 31: the shipped miniature is below the shape floor (its card, "
                   "training/sd3-builtin.md); strict, so this fails the day it clears them: then drop the mark")
def test_the_card_measurement_clears_the_floors():
    """Colour >= 90 %, shape >= 80 % at 28 steps and guidance 7.0 (issue 31): the card's figures."""
    res = card()
    fig, floors = res["models"]["builtin-sd3"], res["floors"]["builtin-sd3"]
    missed = {k: fig[k] for k, floor in floors.items() if fig[k] < floor}
    assert not missed, f"below the floors {floors}: {missed} (training/sd3-builtin.md)"


def printed(notebook):
    nb = json.loads((ROOT / "notebooks" / notebook).read_text())
    return "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))


def test_notebook_11_prints_the_cards_table():
    text = printed("11_sd3_in_miniature.ipynb")
    for name, fig in card()["models"].items():
        row = re.search(rf"^{re.escape(name)}\s+\d+, [\d.]+\s+(\d+)%\s+(\d+)%\s+(\d+)%\s+(\d+)%", text, re.M)
        assert row, name
        assert [int(v) for v in row.groups()] == [round(100 * fig[k]) for k in ("colour", "shape", "side", "two_object")]


def test_readme_states_the_shipped_size():
    size = sum(f.stat().st_size for f in sd3.SD3_BUILTIN.rglob("*") if f.is_file()) / MB
    stated = re.search(r"`sdlib/models/builtin-sd3/`[^.]*?(\d+\.\d) MB", (ROOT / "README.md").read_text())
    assert stated and abs(float(stated.group(1)) - size) < 0.06
