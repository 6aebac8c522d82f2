"""The model-free judge: right on ground truth, wrong when the label is wrong, quiet on nothing."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from sdlib.builtin import checker as C
from sdlib.builtin import scenes as S
from sdlib.errors import SDLibError


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


def test_lab_matches_published_values():
    """sRGB red and a mid grey in CIELAB (D65), as colour-science tables give them."""
    assert np.allclose(C.lab([255, 0, 0]), [53.24, 80.09, 67.20], atol=0.05)
    assert np.allclose(C.lab([[128, 128, 128], [255, 255, 255]]), [[53.59, 0, 0], [100, 0, 0]], atol=0.05)
    assert C.colour_difference(np.array([35, 75, 215]), np.array([35, 75, 215])) == 0


@pytest.mark.parametrize("rgb, name", [
    ((71, 89, 146), "blue"),    # the dull blue background of notebook 05 (RGB: nearer grey)
    ((202, 89, 17), "orange"),  # a dark orange (lightness counts half)
    ((109, 73, 148), "purple"),
    ((128, 128, 128), None),    # a mid grey is no object colour of the palette
    ((240, 110, 190), None),    # pink is outside the palette
])
def test_colours_are_named_as_they_look(rgb, name):
    image = np.full((64, 64, 3), 235, np.uint8)
    image[16:48, 16:48] = rgb  # a square of that colour on near-white
    assert C.judge(image)["colour"] == name


def test_background_is_named_from_the_border_even_when_dull_or_pale():
    image = np.full((64, 64, 3), (71, 89, 146), np.uint8)  # notebook 05's "blue read as grey"
    image[20:44, 20:44] = (250, 0, 0)
    assert C.judge(image)["background"] == C.background_name(image) == "blue"
    obj = S.make_obj("black", "circle")
    for colour in set(S.BACKGROUND_COLOURS) - {"black"}:  # a texture is named by its pale tint
        for kind in S.TEXTURES:  # (black's pale tint is a mid grey: named grey)
            bg = S.Background(kind, colour, S._tones(kind, S._pale(S.BACKGROUND_COLOURS[colour])), 0.17, 0.5)
            assert C.judge(S.render(S.Scene((obj,), bg)))["background"] == colour, (kind, colour)


def test_error_rates_are_zero_on_renders_and_count_each_mistake(monkeypatch):
    result = C.error_rates(80, seed=5)
    assert all(result[k] == 0 for k in C.ATTRIBUTES), result["mistakes"]
    assert result["n"]["colour"] == 80 and 0 < result["n"]["background"] < 80  # solid ones only
    real = C.judge

    def always_red(image, *args, **kwargs):  # a judge that names every object red
        return dict(real(image, *args, **kwargs), colour="red")

    monkeypatch.setattr(C, "judge", always_red)
    result = C.error_rates(80, seed=5)
    truth = [s.main.colour for s in S.make_batch(80, 5, split="all", two_object_prob=0.0)[2]]
    assert result["colour"] == sum(c != "red" for c in truth) / 80 > 0.5
    assert all(t != "red" and j == "red" for t, j in result["mistakes"]["colour"])
    assert result["shape"] == 0


def test_error_rates_through_the_vae_are_low(sd):
    result = C.error_rates(8, seed=0, sd=sd)  # rendered at sd.image_size, VAE encode + decode
    assert result["colour"] == result["shape"] == 0, result["mistakes"]
    assert result["position"] <= 1 / 8, result["mistakes"]
    with pytest.raises(SDLibError, match="sd must be"):
        C.error_rates(8, sd="builtin")
