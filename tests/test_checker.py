"""The model-free judge: right on ground truth, wrong when the label is wrong, quiet on nothing."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from sdlib.builtin import checker as C
from sdlib.builtin import scenes as S


@pytest.mark.parametrize("use_scene_background", [False, True])
def test_ground_truth_accuracy(use_scene_background):
    result = C.validate(200, seed=1, use_scene_background=use_scene_background, verbose=False)
    assert result["colour_acc"] >= 0.98 and result["shape_acc"] >= 0.95, result
    assert result["size_acc"] >= 0.95 and result["position_acc"] >= 0.95, result


def test_every_shape_colour_size_and_position_is_told_apart():
    for shape in S.SHAPES:
        for colour in S.COLOURS:
            background = "grey" if colour in ("white", "black") else "white"
            v = C.judge(S.render(S.make_scene(colour, shape, background=background)))
            assert (v["colour"], v["shape"]) == (colour, shape), v
            runner_up = sorted(v["scores"].values())[-2]
            assert v["shape_score"] - runner_up > 0.1  # a clear margin, not a coin toss
    for size in S.SIZES:
        for position in S.POSITIONS:
            v = C.judge(S.render(S.make_scene("blue", "star", size, position)))
            assert (v["size"], v["position"], v["shape"]) == (size, position, "star"), v


def test_wrong_labels_score_zero():
    image = S.render(S.make_scene("red", "circle", background="yellow"))
    right = S.make_scene("red", "circle")
    assert C.adherence([image], [right])["both_acc"] == 1.0
    wrong = C.adherence([image], [S.make_scene("blue", "square")])
    assert wrong["colour_acc"] == 0.0 and wrong["shape_acc"] == 0.0
    images, _, scenes = S.make_batch(60, seed=2, two_object_prob=0.0)
    shuffled = scenes[1:] + scenes[:1]  # each image judged against another's label
    assert C.adherence(images, shuffled)["both_acc"] < 0.2


def test_blank_and_noise_images_give_none():
    blank = np.full((64, 64, 3), 200, np.uint8)
    for v in (C.judge(blank), C.judge(blank, (200, 200, 200))):
        assert v["colour"] is None and v["shape"] is None and v["n_objects"] == 0
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    assert C.judge(noise)["shape"] is None
    assert C.adherence([blank], [S.make_scene("red", "circle")])["both_acc"] == 0.0


def test_two_objects_are_both_judged():
    images, _, scenes = S.make_batch(40, seed=3, two_object_prob=1.0)
    assert all(len(s.objects) == 2 for s in scenes)
    result = C.adherence(images, scenes)
    assert result["n"] == 80 and result["both_acc"] >= 0.95, result


def test_input_formats_agree():
    image = S.render(S.make_scene("purple", "triangle", "large", "bottom right", "green"))
    array = np.array(image)
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255
    verdicts = [C.judge(x) for x in (image, array, tensor, array.astype(np.float32) / 255)]
    assert all(v["shape"] == "triangle" and v["colour"] == "purple" for v in verdicts)
    assert verdicts[0]["background"] == "green"


def test_mild_blur_and_noise_are_tolerated():
    """Generated images are softer than renders; the judge should not punish a VAE's blur."""
    images, _, scenes = S.make_batch(100, seed=4, split="all", two_object_prob=0.0)
    rng = np.random.default_rng(0)
    soft = [Image.fromarray(np.clip(ndimage.gaussian_filter(im.astype(float), (0.8, 0.8, 0))
                                    + rng.normal(0, 6, im.shape), 0, 255).astype(np.uint8))
            for im in images]
    result = C.adherence(soft, scenes)
    assert result["colour_acc"] >= 0.98 and result["shape_acc"] >= 0.95, result
