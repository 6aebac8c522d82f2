"""The word-mixing explorer: its endpoints are the two prompts, and moving the slider redraws."""
import pytest

import sdlib
from sdlib import explore_embeddings as X

PROMPT = "a large red circle"


def test_render_endpoints_are_the_two_prompts(sd):
    cache = {}
    left, middle, right = X.render(sd, PROMPT, "red", "blue", 1.0, seed=0, num_steps=3, cache=cache)
    assert sdlib.max_pixel_diff(middle, right) == 0
    typed = sdlib.generate(sd, "a large blue circle", seed=0, num_steps=3)
    assert sdlib.max_pixel_diff(right, typed) <= 1  # hand encoder vs CLIPTextModel: ~1e-6 apart
    assert sdlib.max_pixel_diff(left, sdlib.generate(sd, PROMPT, seed=0, num_steps=3)) <= 1
    assert len(cache) == 2  # weight 1 is the right endpoint: two drawings, not three
    X.render(sd, PROMPT, "red", "blue", 0.5, seed=0, num_steps=3, cache=cache)
    assert len(cache) == 3  # a slider move draws only the middle


def test_explorer_slider_redraws(sd):
    w = X.explorer(sd, PROMPT, "red", "blue", num_steps=3, words=["red", "blue", "circle"])
    slider = w.children[0]
    assert (slider.min, slider.max, slider.value) == (-0.5, 1.5, 0.5)
    slider.value = 0.0  # the prompt as written: the middle is the left endpoint
    left, middle, right = w.result
    assert sdlib.max_pixel_diff(middle, left) == 0
    assert sdlib.max_pixel_diff(left, sdlib.generate(sd, PROMPT, seed=0, num_steps=3)) <= 1
    typed = sdlib.generate(sd, PROMPT.replace("red", "blue"), seed=0, num_steps=3)
    assert sdlib.max_pixel_diff(right, typed) <= 1
    slider.value = 1.0  # all the way to the other word: the middle is the right endpoint
    assert sdlib.max_pixel_diff(w.result[1], typed) <= 1


def test_explorer_rejects_multi_token_words(sd):
    with pytest.raises(sdlib.SDLibError, match="CLIP tokens"):
        X.explorer(sd, PROMPT, "red", "bluegreenish")
