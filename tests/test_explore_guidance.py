"""The guidance explorer: each control reaches the sampler, and a move regenerates."""
import matplotlib.pyplot as plt
import pytest

import sdlib
from sdlib import explore_guidance as X
from sdlib import guidance as G


def test_render_is_generate_with_and_without_the_loss(sd):
    plain, guided = X.render(sd, "a red circle", "a square", 4.0, "blue", 10, seed=1, num_steps=4)
    ref = sdlib.generate(sd, "a red circle", "a square", guidance_scale=4.0, seed=1, num_steps=4)
    assert sdlib.max_pixel_diff(plain, ref) == 0
    ref = sdlib.generate(sd, "a red circle", "a square", guidance_scale=4.0, seed=1, num_steps=4,
                         loss_fn=G.blue_loss, loss_scale=10, loss_every=2)
    assert sdlib.max_pixel_diff(guided, ref) == 0
    same = X.render(sd, "a red circle", loss_scale=0, num_steps=2)
    assert same[0] is same[1]  # no loss: no second run
    with pytest.raises(sdlib.SDLibError, match="unknown loss"):
        X.render(sd, "a red circle", loss="sharp", loss_scale=1, num_steps=2)


def test_explorer_controls_regenerate(sd):
    w = X.explorer(sd, num_steps=4)
    names = [c.description for c in w.children[:-1]]
    assert names == ["prompt", "negative prompt", "guidance scale", "loss", "loss scale"]
    assert list(X.LOSSES) == list(w.children[3].options)
    prompt = "a large red circle on the left"
    first = w.result[1]
    largest = w.children[4].options[-1]
    w.children[4].value = largest  # loss scale: the blue loss now acts, as strongly as it can
    ref = sdlib.generate(sd, prompt, seed=0, num_steps=4, loss_fn=G.blue_loss, loss_scale=largest,
                         loss_every=2)
    assert sdlib.max_pixel_diff(w.result[1], ref) == 0  # the slider's value reached the sampler
    assert G.blue_fraction([w.result[1]]) > G.blue_fraction([first])
    w.children[1].value = "a blue square"  # the negative prompt reaches the uncond half
    ref = sdlib.generate(sd, prompt, "a blue square", seed=0, num_steps=4)
    assert sdlib.max_pixel_diff(w.result[0], ref) == 0
    plt.close("all")
