"""Notebook 07's concepts and how they are judged: cyan, a colour far from everything the dataset
draws, and a cat photo; what a fine-tune did, measured (`concept.measure`, `same_verdicts`)."""
import itertools

import numpy as np
import pytest

import sdlib
from sdlib.errors import SDLibError
from sdlib.builtin import checker as C
from sdlib.builtin import concept
from sdlib.testing import twins
from sdlib.builtin import scenes as S


def _dataset_tones():
    """Every colour the dataset paints: the palette, solid backgrounds, and the two tones of every
    pale texture (scenes._tones of scenes._pale, as sample_background makes them)."""
    tones = list(S.BACKGROUND_COLOURS.values())
    for base in S.BACKGROUND_COLOURS.values():
        for kind in ("striped", "gradient"):
            tones += S._tones(kind, S._pale(base))
    return tones


def test_cyan_is_outside_the_palette_and_far_from_everything_the_dataset_draws():
    rgb = np.array(concept.NEW_COLOUR["rgb"])
    assert concept.NEW_COLOUR["name"] not in S.COLOURS
    distances = [float(np.linalg.norm(rgb - np.array(c))) for c in _dataset_tones()]
    assert min(distances) >= 140, sorted(distances)[:3]  # the comment at NEW_COLOUR says so
    # never read as a palette colour: every jittered cyan is further than the judge's limit (in its
    # perceptual units, checker.colour_difference) from every palette colour
    jittered = [np.clip(rgb + np.array(d) * S.JITTER, 0, 255) for d in itertools.product((-1, 0, 1), repeat=3)]
    assert min(float(C.colour_difference(c, np.array(ref))) for c in jittered for ref in S.COLOURS.values()) \
        > C.MAX_COLOUR_DISTANCE
    assert set(concept.COLOURS_AND_NEW) == set(S.COLOURS) | {"cyan"}


def test_the_examples_are_cyan_circles_on_white_with_templates():
    images, captions = concept.new_colour_images(128, n=12)
    assert len(images) == len(captions) == 12 and all(im.size == (128, 128) for im in images)
    assert all(c.count("{}") == 1 and "circle" in c and "white background" in c for c in captions)
    assert C.share_of(images, colour="cyan", shape="circle", colours=concept.COLOURS_AND_NEW) == 1.0
    # without cyan among the candidates the judge names no colour (too far from all of them)
    assert {C.judge(im)["colour"] for im in images} == {None}
    assert C.share_of(images, colour="blue") == 0.0


def test_same_verdicts_counts_pictures_that_keep_colour_and_shape():
    red, blue = S.render(S.make_scene("red", "circle"), 64), S.render(S.make_scene("blue", "circle"), 64)
    square = S.render(S.make_scene("red", "square"), 64)
    assert concept.same_verdicts([red, blue], [red, blue]) == 1.0
    assert concept.same_verdicts([red, blue, red, red], [red, red, square, red]) == 0.5
    with pytest.raises(SDLibError, match="before and after"):
        concept.same_verdicts([red], [red, blue])
    with pytest.raises(SDLibError, match="after"):
        concept.same_verdicts([red], [])


def test_measure_of_an_unchanged_model_finds_no_drift(sd):
    before = sdlib.generate(sd, ["a circle"] * 2, seed=0, num_steps=3)
    row = concept.measure(sd, "a cyan circle", "a circle", before, n=2, seed=0, num_steps=3)
    assert row["class_psnr"] == float("inf") and row["class_kept"] == 1.0  # the same seeds, the same model
    assert len(row["samples"]) == 2 and len(row["class_samples"]) == 2 and row["seconds"] > 0
    assert row["concept"] == C.share_of(row["samples"], colour="cyan", colours=concept.COLOURS_AND_NEW)
    assert row["class_concept"] == C.share_of(before, colour="cyan", colours=concept.COLOURS_AND_NEW)
    one = sdlib.generate(sd, ["a circle"], seed=0, num_steps=3)  # a batch of its own: batches of 1 and 2 differ in the last bits
    bare = concept.measure(sd, "a cyan circle", "a circle", one, n=1, seed=0, judge=False, num_steps=3)
    assert "concept" not in bare and "class_kept" not in bare and bare["class_psnr"] == float("inf")
    with pytest.raises(SDLibError, match="class_before"):
        concept.measure(sd, "a cyan circle", "a circle", [], num_steps=3)


def test_share_of_counts_colour_and_shape_separately():
    pictures = [S.render(S.make_scene("red", "circle"), 64), S.render(S.make_scene("red", "square"), 64),
                S.render(S.make_scene("blue", "square"), 64), S.render(S.make_scene("green", "star"), 64)]
    assert C.share_of(pictures, colour="red") == 0.5
    assert C.share_of(pictures, shape="square") == 0.5
    assert C.share_of(pictures, colour="red", shape="square") == 0.25


def test_judge_names_colours_from_the_given_table():
    image = S.render(S.make_scene("red", "circle"), 64)
    assert C.judge(image)["colour"] == "red"
    assert C.judge(image, colours={"crimson": (215, 30, 30), "navy": (0, 0, 128)})["colour"] == "crimson"


def test_the_photo_concept_is_crops_of_the_cat():
    images, captions = concept.photo_concept_images(64, n=4, seed=0)
    assert len(images) == 4 and all(im.size == (64, 64) and im.mode == "RGB" for im in images)
    assert captions == ["a photo of {}"] * 4
    again, _ = concept.photo_concept_images(64, n=4, seed=0)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, again))  # seeded


def test_a_shallow_twin_keeps_real_sd_s_text_shapes():
    real, quick = twins.twin_configs("sd-2-1"), twins.twin_configs("sd-2-1", text_layers=2)
    assert quick["text"]["num_hidden_layers"] == 2 and real["text"]["num_hidden_layers"] == 23
    assert {k: v for k, v in quick["text"].items() if k != "num_hidden_layers"} == \
        {k: v for k, v in real["text"].items() if k != "num_hidden_layers"}
