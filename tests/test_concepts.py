"""Notebook 07's concepts and how they are judged: pink, a colour outside the palette, and a cat photo."""
import numpy as np
from sdlib.builtin import checker as C
from sdlib.builtin import concept, twins
from sdlib.builtin import scenes as S


def test_pink_is_outside_the_palette_and_far_from_every_colour():
    rgb = np.array(concept.NEW_COLOUR["rgb"])
    assert concept.NEW_COLOUR["name"] not in S.COLOURS
    distances = {n: float(np.linalg.norm(rgb - np.array(c))) for n, c in S.COLOURS.items()}
    assert min(distances.values()) >= C.MAX_COLOUR_DISTANCE, distances  # never read as a palette colour
    assert set(concept.COLOURS_AND_NEW) == set(S.COLOURS) | {"pink"}


def test_the_examples_are_pink_circles_with_templates():
    images, captions = concept.new_colour_images(128, n=12)
    assert len(images) == len(captions) == 12 and all(im.size == (128, 128) for im in images)
    assert all(c.count("{}") == 1 and "circle" in c for c in captions)
    assert C.share_of(images, colour="pink", shape="circle", colours=concept.COLOURS_AND_NEW) == 1.0
    # without pink among the candidates the judge names no colour (too far from all of them)
    assert {C.judge(im)["colour"] for im in images} == {None}
    assert C.share_of(images, colour="red") == 0.0


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
