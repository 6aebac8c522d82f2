"""The prompts of the evaluation rows, each with the scene a perfect model would draw for it.

Why: "does the model put it on the left?" is measured by asking for it and letting the model-free
`checker` look. Each item carries its ground truth (a `scenes.Scene`), so the scoring can first be
run on `scenes.render(scene)`: a perfect model must score 100 %, and a mirrored one 0 %
(tests/test_evaluation_rows.py). Used by `evaluate.row_accuracy`; the colour/shape row uses
`scenes.eval_prompts`.

    side_prompts(48, seed=0)[0]        # ("a yellow circle on the left", Scene(...))
    size_pairs(48, seed=0)[0]          # (("a small ...", Scene), ("a large ...", Scene))
    two_object_prompts(48, seed=0)[0]  # ("a yellow circle on the left and an orange square
                                       #   on the right", Scene with two objects)

Every object is a `scenes.HELD_OUT` colour+shape pair, never seen in training, and the wording is
the captions' own (`scenes.POSITION_WORDS`, `scenes.SIZE_WORDS`). What a prompt does not name
(size, background, where a sized object sits) is drawn from the seeded rng, as in training.
"""
import numpy as np

from . import scenes as S
from .scenes import CORNERS, SIDES, pick, with_article

# Two objects on opposite sides; the prompt names the first object first, wherever it sits.
LAYOUTS = (("left", "right"), ("right", "left"), ("top", "bottom"), ("bottom", "top"))
UNNAMED_SIZES = tuple(S.SIZES)  # a prompt without a size word: any size, as in training
TWO_OBJECT_SIZES = ("small", "medium")  # the sizes of training's two-object scenes


def _held_out(i):
    """Item i's held-out pair: cycling through the six, so each is equally represented."""
    return S.HELD_OUT[i % len(S.HELD_OUT)]


def _pair_and_option(i, n_options):
    """Item i's held-out pair (i % 6) and option ((i + i // 6) % n_options). With 4 options the
    option index of pair p runs p, p+3, p+6, p+9 (mod 4): every (pair, option) combination once
    in 24 items, and the options still vary within the first 6."""
    return _held_out(i), (i + i // len(S.HELD_OUT)) % n_options


def _one_object_item(rng, colour, shape, position, size):
    """(prompt, scene): "a yellow circle on the left" and that object on a sampled background."""
    obj = S.make_obj(colour, shape, size, position, rng)
    scene = S.Scene((obj,), S.sample_background(rng, (obj,)))
    return f"{with_article(f'{colour} {shape}')} {pick(rng, S.POSITION_WORDS[position])}", scene


def _positioned(n, seed, positions):
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        (colour, shape), k = _pair_and_option(i, len(positions))
        items.append(_one_object_item(rng, colour, shape, positions[k],
                                      pick(rng, UNNAMED_SIZES)))
    return items


def side_prompts(n, seed=0):
    """n items (prompt, scene) "a yellow circle on the left" / "... at the top": held-out pairs
    cycled, the four sides balanced (every pair on every side once in 24 items); size and
    background unnamed, hence drawn."""
    return _positioned(n, seed, SIDES)


def corner_prompts(n, seed=0):
    """n items (prompt, scene) "a yellow circle in the top left corner" (or "in the top left",
    "at the top left", the captions' three wordings, drawn): as `side_prompts`, for corners."""
    return _positioned(n, seed, CORNERS)


def size_pairs(n, seed=0):
    """n pairs ((small prompt, small scene), (large prompt, large scene)): "a small yellow circle"
    and "a large yellow circle" (or "little" / "big"), to be generated from the same seed. The two
    scenes share everything but the size: position (unnamed, so the middle, which is what the
    captions leave unsaid), jitter (one sub-seed for both) and background."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        colour, shape = _held_out(i)
        twin_seed = int(rng.integers(2**32))
        small, large = (S.make_obj(colour, shape, size, "middle", np.random.default_rng(twin_seed))
                        for size in ("small", "large"))
        background = S.sample_background(rng, (large,))
        items.append(tuple((f"{with_article(f'{pick(rng, S.SIZE_WORDS[o.size])} {colour} {shape}')}",
                            S.Scene((o,), background)) for o in (small, large)))
    return items


def two_object_prompts(n, seed=0):
    """n items (prompt, scene) "a yellow circle on the left and an orange square on the right"
    (also right/left, top/bottom, bottom/top, balanced). Both objects are held-out pairs, two
    different ones (so two different colours: the check finds each by its colour): the first
    cycles through the six, its partner is 1 to 5 places further on, moving every 6 items.
    Sizes unnamed: small or medium, as training's two-object scenes."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        first, k = _pair_and_option(i, len(LAYOUTS))
        second = _held_out(i + 1 + (i // len(S.HELD_OUT)) % (len(S.HELD_OUT) - 1))
        objects = tuple(S.make_obj(colour, shape, pick(rng, TWO_OBJECT_SIZES), position, rng)
                        for (colour, shape), position in zip((first, second), LAYOUTS[k]))
        prompt = " and ".join(f"{with_article(f'{o.colour} {o.shape}')} {S.POSITION_WORDS[o.position][0]}"
                              for o in objects)
        items.append((prompt, S.Scene(objects, S.sample_background(rng, objects))))
    return items
