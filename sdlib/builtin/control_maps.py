"""Control maps drawn exactly from the scenes: the picture's structure, given beside the caption.

A procedural scene knows where its object is, so its control map is exact, not estimated (no edge
or depth detector): the object's mask, its outline (what a Canny-style edge map shows of it), or a
depth-like map in which larger objects are nearer. ControlNet (Zhang et al. 2023) reads the map as
an image (3, H, W) in [0, 1]; depth-to-image (SD 2) reads a depth map at latent size as an extra
input channel.

Control scenes put one object anywhere and at any size (not only the captions' 3 x 3 grid and three
sizes), and their captions name only the colour and the shape: the map alone says where and how
big. Sizes in HELD_OUT_EXTENTS and centres in HELD_OUT_CENTRES are never used in training, so a
measured fit on them is a fit on maps the model never saw. Used by the ControlNet training
(`sdlib.builtin.train_control`).
"""
import numpy as np
import torch

from ..checks import check_choice, check_int
from .scenes import (BACKGROUND_COLOURS, COLOURS, MARGIN, TRAIN_PAIRS, Background, Obj, Scene, _jitter, with_article,
                     sample_background, shape_alpha)

KINDS = ("mask", "edges", "depth")
EXTENTS = (0.2, 0.5)  # bbox side / image side, drawn uniformly
HELD_OUT_EXTENTS = ((0.27, 0.30), (0.40, 0.43))  # never drawn in training
HELD_OUT_CENTRES = (0.36, 0.40)  # a centre coordinate in this band (x or y) is never drawn in training
NEAR, FAR = 1.0, 0.35  # depth of the largest and the smallest object (background 0: far away)


def is_held_out(centre, extent):
    """Whether an object of bbox side `extent` at `centre` (fractions of the picture) is one that
    training never draws: its size in a `HELD_OUT_EXTENTS` band or a coordinate of its centre in
    `HELD_OUT_CENTRES`."""
    in_band = lambda v, band: band[0] <= v <= band[1]
    return any(in_band(extent, b) for b in HELD_OUT_EXTENTS) or any(in_band(c, HELD_OUT_CENTRES) for c in centre)


def control_scene(rng, split="train", pairs=TRAIN_PAIRS):
    """One object of a (colour, shape) pair anywhere, at any size: split "train" never draws a
    held-out size or centre, "heldout" always draws one (a size or a centre from the held-out bands)."""
    check_choice("split", split, ("train", "heldout"))
    while True:
        extent = float(rng.uniform(*EXTENTS))
        lo = extent / 2 + MARGIN
        centre = tuple(float(v) for v in rng.uniform(lo, 1 - lo, 2))
        if is_held_out(centre, extent) == (split == "heldout"):
            break
    colour, shape = pairs[rng.integers(len(pairs))]
    obj = Obj(shape, colour, "medium", "middle", _jitter(rng, COLOURS[colour]), centre, extent)
    return Scene((obj,), sample_background(rng, (obj,)))


def plain_scene(colour, shape, centre, extent, background="white"):
    """A control scene without randomness: one object at `centre` (x, y as fractions) with bbox
    side `extent`, on a solid background (for notebooks and tests)."""
    obj = Obj(shape, colour, "medium", "middle", COLOURS[colour], tuple(map(float, centre)), float(extent))
    return Scene((obj,), Background("solid", background, (BACKGROUND_COLOURS[background],)))


def control_caption(scene):
    """What a control scene's caption says: the colour and the shape only ("a red circle")."""
    obj = scene.main
    return f"{with_article(obj.colour)} {obj.shape}"


def control_map(scene, size, kind="mask"):
    """The scene's control map (size, size), float32 in [0, 1], drawn exactly:
    mask: 1 on the objects; edges: their outline, one or two pixels wide (the mask's 3x3 max minus
    its 3x3 min); depth: each object at NEAR for the largest extent down to FAR for the smallest."""
    check_choice("kind", kind, KINDS)
    size = check_int("size", size, lo=8)
    m = np.zeros((size, size), np.float32)
    for obj in scene.objects:  # later objects on top, as the renderer draws them
        a = shape_alpha(obj.shape, (obj.center[0] * size, obj.center[1] * size), obj.extent * size, size)
        span = (obj.extent - EXTENTS[0]) / (EXTENTS[1] - EXTENTS[0])
        value = FAR + (NEAR - FAR) * float(np.clip(span, 0, 1)) if kind == "depth" else 1.0
        m = a * value + (1 - a) * m
    if kind == "edges":
        p = np.pad(m, 1, mode="edge")
        windows = np.stack([p[i:i + size, j:j + size] for i in range(3) for j in range(3)])
        m = windows.max(0) - windows.min(0)
    return m


def control_images(scenes, size, kind="mask"):
    """The scenes' maps as ControlNet's conditioning images: (B, 3, size, size) in [0, 1], the map
    in all three channels."""
    maps = torch.from_numpy(np.stack([control_map(s, size, kind) for s in scenes]))  # (B, size, size)
    return maps[:, None].expand(-1, 3, -1, -1).contiguous()


def shape_map(shape, centre, extent, size=128, kind="mask"):
    """The control image (1, 3, size, size) in [0, 1] of one `shape` centred at `centre` (x, y as
    fractions, from the top left) with bbox side `extent`: what the ControlNet explorer draws
    (`sdlib.display.explore_control`, notebooks/09)."""
    return control_images([plain_scene("red", shape, centre, extent)], size, kind)


def make_control_batch(n, seed, size, split="train", kind="mask"):
    """n seeded (rendered images uint8 (n, size, size, 3), captions, scenes, maps (n, 3, size, size))."""
    from .scenes import _render_array

    rng = np.random.default_rng(seed)
    scenes = [control_scene(rng, split) for _ in range(n)]
    images = np.stack([_render_array(s, size) for s in scenes])
    return images, [control_caption(s) for s in scenes], scenes, control_images(scenes, size, kind)
