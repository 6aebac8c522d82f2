"""The ControlNet explorer: each control reaches the map or the sampler, and a move regenerates."""
import dataclasses
import functools

import matplotlib.pyplot as plt
import pytest
import torch

import sdlib
from sdlib.builtin import control_maps as C
from sdlib.display import explore_control as X
from sdlib.testing.twins import twin_controlnet


DRAW = functools.partial(C.shape_map, size=128, kind="mask")


@pytest.fixture(scope="module")
def csd():
    sd = sdlib.load_sd("builtin", device="cpu")
    return dataclasses.replace(sd, controlnet=twin_controlnet(sd.unet, seed=1).eval())


def test_render_is_generate_without_and_with_the_map(csd):
    image, plain, steered = X.render(csd, DRAW, "a red circle", "star", 0.3, 0.6, 0.3, 0.5, seed=1, num_steps=3)
    scene = C.plain_scene("red", "star", (0.3, 0.6), 0.3)
    assert torch.equal(image, C.control_images([scene], 128, "mask"))
    assert sdlib.max_pixel_diff(plain, sdlib.generate(csd, "a red circle", seed=1, num_steps=3)) == 0
    ref = sdlib.generate(csd, "a red circle", seed=1, num_steps=3, control_image=image, conditioning_scale=0.5)
    assert sdlib.max_pixel_diff(steered, ref) == 0
    with pytest.raises(sdlib.SDLibError, match="x must be"):
        X.render(csd, DRAW, "a red circle", x=0.05, size=0.3)
    with pytest.raises(sdlib.SDLibError, match="needs a ControlNet"):
        X.render(dataclasses.replace(csd, controlnet=None), DRAW, "a red circle")
    with pytest.raises(sdlib.SDLibError, match="draw must be"):
        X.explorer(csd, "mask")


def test_explorer_controls_regenerate(csd):
    w = X.explorer(csd, DRAW, num_steps=2)
    names = [c.description for c in w.children[:-1]]
    assert names == ["prompt", "map's shape", "x (left to right)", "y (top to bottom)", "size", "conditioning scale"]
    first_map, _, first = w.result
    w.children[2].value = 0.25  # x: the map moves left
    assert w.result[0][..., :64].sum() > first_map[..., :64].sum()
    assert sdlib.max_pixel_diff(w.result[2], first) > 0
    w.children[5].value = 0.0  # scale 0: the UNet alone
    assert sdlib.max_pixel_diff(w.result[2], w.result[1]) == 0
    w.children[3].value = 0.85  # near the edge the size shrinks to fit, no error
    assert w.result[0].shape == (1, 3, 128, 128)
    plt.close("all")
