"""The joint-attention explorer (notebook 11): the picture is sdlib.generate's, the maps are the
recorded image-to-text attention, and moving the token slider shows another token's map."""
import matplotlib.pyplot as plt
import pytest
import torch

import sdlib
from sdlib.builtin import sd3 as factory
from sdlib.display import explore_sd3 as X


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    sd = sdlib.load_sd(str(factory.build_sd3(tmp_path_factory.mktemp("sd3x") / "m")), device="cpu")
    with torch.no_grad():  # away from adaLN-Zero's zero start, so the attention depends on the text
        for p in sd.transformer.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return sd


def test_render_is_generate_and_its_maps(sd3):
    picture, maps, words = X.render(sd3, "a red circle", num_steps=2, seed=1)
    plain = sdlib.generate(sd3, "a red circle", num_steps=2, seed=1, guidance_scale=7.0, output="tensor")
    assert float((picture - plain).abs().max()) <= 1e-5  # the recording attention is written out: float rounding
    assert maps.shape == (77 + 256, 16, 16) and float(maps.sum(0).max()) <= 1 + 1e-5  # 16 x 16 patches of 1 x 1
    assert words[0] == "<|startoftext|>" and words[-1] == "<|endoftext|>" and "red</w>" in words


def test_explorer_token_slider_changes_the_map(sd3):
    w = X.explorer(sd3, "a red circle", num_steps=2)
    assert [c.description for c in w.children[:-1]] == ["prompt", "token"]
    first = w.result["map"]
    w.children[1].value = 1
    assert w.result["token"] == "a</w>" and not torch.equal(w.result["map"], first)
    plt.close("all")


def test_the_guidance_scale_is_the_pictures(sd3):
    picture, _, _ = X.render(sd3, "a red circle", num_steps=2, seed=1, guidance_scale=3.0)
    plain = sdlib.generate(sd3, "a red circle", num_steps=2, seed=1, guidance_scale=3.0, output="tensor")
    assert float((picture - plain).abs().max()) <= 1e-5
    with pytest.raises(sdlib.SDLibError, match="guidance_scale"):
        X.render(sd3, "a red circle", guidance_scale=-1)


def test_a_unet_model_is_one_clear_error(sd):
    with pytest.raises(sdlib.SDLibError, match="sd must be an SD3 model"):
        X.render(sd, "a red circle")
