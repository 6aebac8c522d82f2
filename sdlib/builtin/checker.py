"""A model-free judge of generated scenes: which colour and shape is drawn, where, how big.

Why: "did the model draw a purple triangle?" should be answered by something that knows nothing
about the model, or a model could grade itself. Because `scenes` draws from a tiny known grammar,
plain pixel statistics suffice: segment the pixels far from the background, name the colour of
their median (the nearest palette colour as the eye sees it, `colour_difference`), and find the
shape whose template, drawn with the blob's area at its centroid, overlaps it best (analysis by
synthesis: no thresholds per shape to tune). The place is the blob's bounding-box centre on the
3x3 grid; the background is named from the median of the image's border.

    verdict = judge(image)                    # {"colour": "red", "shape": "circle", ...}
    adherence(images, [s for _, s in items])  # {"colour_acc": 0.97, "shape_acc": 0.9, ...}
    position_ok(images, scenes)               # {"acc": 0.92, "n": 48, "ok": [True, ...]}
    error_rates(200, sd=sd)                   # {"colour": 0.0, "shape": 0.02, ...}: its own errors

Taught in notebooks/05 (opened there, with its error rates); used from notebooks/01 on.

The evaluation rows (`evaluate.row_accuracy`, prompts from `eval_sets`) are scored by
`position_ok`, `size_ok` and `two_objects_ok`, all on `judge`'s blobs: one segmentation for all.
Pixel thresholds were set on 64 px images; larger images scale them (`_pixel_scale`).
"""
from itertools import permutations

import numpy as np
from scipy import ndimage

from . import scenes as S
from ..checks import check_choice, check_int, check_number
from ..errors import SDLibError
from ..images import load_image
from ..models.load import check_sd
from .shapes import SHAPES, shape_alpha, unit_area_centroid

ROUGH_DISTANCE = 45    # RGB distance from the background that marks a pixel as "object"
MIN_AREA = 12          # pixels at 64 px (scaled with the image's area above); smaller is noise
EDGE_DILATION = 2      # pixels at 64 px (scaled with the side above): the soft edge of a blob
REFERENCE_SIZE = 64    # the image side the pixel thresholds above were set on
MAX_AREA_FRAC = 0.6    # a blob covering more of the image is not an object of the grammar
MIN_SHAPE_SCORE = 0.6  # template overlap (soft IoU) below this: shape unclear -> None
MAX_COLOUR_DISTANCE = 15  # CIE94 difference (`colour_difference`): a median colour farther than
#   this from every named colour is named None. Twice the largest error of the built-in VAE's round
#   trip (7.4 on 64 renders); a mid grey (16 or more from every palette colour), pink (19 from
#   purple) and cyan (30 from green) are outside the palette and named None unless added to it.
MIN_SIZE = 32          # validate's smallest render: a small shape is then ~7 px, above MIN_AREA
SIZE_RATIO = 2         # size row: "a large X" must cover more than twice the area of "a small X"
#   (renders: (0.47 / 0.22)^2 = 4.6, at least 3.3 with the +-8 % jitter of scenes.make_obj)
EMPTY = dict(colour=None, shape=None, size=None, position=None, shape_score=0.0,
             colour_distance=None)


def _pixels(image, name="image"):
    """Any one image (see `images.load_image`) -> (H, W, 3) float32 RGB in 0..255."""
    return np.asarray(load_image(image, name=name), dtype=np.float32)


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise SDLibError(f"{name} must be True or False, got {value!r}.")
    return value


# ---------------------------------------------------------------- naming colours
# sRGB (IEC 61966-2-1) -> CIE XYZ under the D65 white -> CIELAB (CIE 1976 L*a*b*)
SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805],
                        [0.2126, 0.7152, 0.0722],
                        [0.0193, 0.1192, 0.9505]])
D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def _rgb(name, value):
    """value as a float64 array (..., 3) of RGB in 0..255, else SDLibError naming `name`."""
    try:
        c = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        c = None
    if c is None or c.ndim == 0 or c.shape[-1] != 3 or not np.isfinite(c).all() or (c < 0).any() or (c > 255).any():
        got = f"shape {c.shape}" if c is not None and c.ndim and c.shape[-1] != 3 else repr(value)[:60]
        raise SDLibError(f"{name} must be RGB in 0..255 with 3 values last, such as (215, 30, 30) or an "
                         f"array (..., 3); got {got}.")
    return c


def lab(rgb):
    """RGB in 0..255, (..., 3) -> CIELAB (..., 3): L* lightness 0..100, a* green-red, b* blue-yellow.
    Undo the sRGB gamma, mix to XYZ, divide by the white, then the CIE cube root."""
    return _lab(_rgb("rgb", rgb))


def _lab(rgb):
    """`lab` of an RGB array already checked by `_rgb`."""
    c = rgb / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)  # linear light
    xyz = c @ SRGB_TO_XYZ.T / D65_WHITE  # (..., 3)
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), xyz * 24389 / 27 / 116 + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], -1)


def colour_difference(rgb, reference):
    """How different `rgb` looks from the named colour `reference` (both RGB 0..255, (..., 3)):
    CIE94 with the textile weights (CIE 116-1995), Delta E*94 = sqrt((dL / 2)^2 + (dC / S_C)^2 +
    (dH / S_H)^2), S_C = 1 + 0.048 C*, S_H = 1 + 0.014 C*, where dL, dC, dH are the differences in
    lightness, chroma (colourfulness) and hue, and C* is the reference's chroma. A vivid reference
    tolerates a duller version of itself, and lightness counts half, as when a person names a
    colour: a dark orange is still orange. The dull blue (71, 89, 146) of a generated background
    is 79 from blue (35, 75, 215) and 71 from grey in RGB, but 11 from blue and 33 from grey here.
    About 1 is the smallest difference the eye sees."""
    l_ref, l_x = _lab(_rgb("reference", reference)), _lab(_rgb("rgb", rgb))  # (..., 3) each, each checked once
    c_ref, c_x = (np.hypot(v[..., 1], v[..., 2]) for v in (l_ref, l_x))  # chroma C*
    d_l, d_c = l_ref[..., 0] - l_x[..., 0], c_ref - c_x
    d_h2 = np.maximum(((l_ref[..., 1:] - l_x[..., 1:]) ** 2).sum(-1) - d_c ** 2, 0)  # dH^2 = da^2 + db^2 - dC^2
    return np.sqrt((d_l / 2) ** 2 + (d_c / (1 + 0.048 * c_ref)) ** 2 + d_h2 / (1 + 0.014 * c_ref) ** 2)


def _nearest_name(rgb, table):
    """(name, CIE94 difference) of the colour in {name: rgb or [rgb, ...]} that rgb looks nearest."""
    names, refs = zip(*[(n, r) for n, v in table.items()
                        for r in (v if isinstance(v[0], (tuple, list)) else [v])])
    d = colour_difference(np.asarray(rgb, np.float64)[None], np.asarray(refs, np.float64))
    return names[int(d.argmin())], float(d.min())


# A background is a solid palette colour or a pale tint of one (scenes.sample_background), so its
# name is that of the nearest of both: a light grey check is "grey", not "white". Black's pale tint
# is a mid grey, so it is left out: a mid grey is "grey".
_BACKGROUND_TONES = {n: [c] + ([S._pale(c)] if n != "black" else [])
                     for n, c in S.BACKGROUND_COLOURS.items()}


def background_name(image):
    """The name of an image's background: the palette colour (scenes.BACKGROUND_COLOURS), or its
    pale tint, nearest to the median colour of the image's border (`colour_difference`)."""
    return _nearest_name(np.median(_border(_pixels(image)), axis=0), _BACKGROUND_TONES)[0]


def _border(img, width=2):
    return np.concatenate([img[:width].reshape(-1, 3), img[-width:].reshape(-1, 3),
                           img[:, :width].reshape(-1, 3), img[:, -width:].reshape(-1, 3)])


def estimate_background(img, k=3, min_share=0.15, iters=6):
    """Background model from the image border: k-means tones, dropping rare ones (an object that
    touches the border), joined into segments so the antialiased edge between two stripe tones,
    or the span of a gradient, counts as background too. Returns (K, 2, 3) segment end points.

    img: any one image (see `images.load_image`); k: starting tones (dark, middle, light);
    min_share: tones on less of the border than this are dropped; iters: k-means rounds."""
    k = check_int("k", k, lo=1, hi=3)
    min_share = check_number("min_share", min_share, lo=0, hi=1 / k)  # the commonest tone stays
    iters = check_int("iters", iters, lo=1)
    return _estimate_background(_pixels(img, "img"), k, min_share, iters)


def _estimate_background(img, k=3, min_share=0.15, iters=6):
    """estimate_background on an (H, W, 3) float32 array in 0..255, arguments already checked."""
    px = _border(img)  # (N, 3)
    order = np.argsort(px.sum(1))
    centres = px[order[(np.array([0.1, 0.5, 0.9]) * (len(px) - 1)).astype(int)[:k]]]  # (k, 3)
    for _ in range(iters):
        labels = np.linalg.norm(px[:, None] - centres[None], axis=2).argmin(1)  # (N,)
        centres = np.stack([px[labels == j].mean(0) if (labels == j).any() else centres[j]
                            for j in range(len(centres))])
    share = np.bincount(labels, minlength=len(centres)) / len(px)
    centres = centres[share >= min_share]
    centres = centres[np.argsort(centres.sum(1))]
    if len(centres) == 1:
        return centres[None].repeat(2, 0).transpose(1, 0, 2)
    return np.stack([centres[:-1], centres[1:]], 1)


def background_segments(scene_or_background, img):
    """Segments (K, 2, 3) of background colours from a Scene, a Background, an RGB triple, a
    colour name, or None (estimated from the border of `img`, any one image)."""
    spec = scene_or_background
    return _segments(spec, _pixels(img, "img") if spec is None else None)


def _segments(spec, img):
    """background_segments on an (H, W, 3) float32 image in 0..255 (needed only when spec is None)."""
    if spec is None:
        return _estimate_background(img)
    if isinstance(spec, S.Scene):
        spec = spec.background
    if isinstance(spec, S.Background):
        t = np.asarray(spec.tones, np.float32)
        if spec.kind == "gradient":
            return t[None]
        return np.stack([t, t], 1)
    if isinstance(spec, str) and spec in S.BACKGROUND_COLOURS:
        spec = S.BACKGROUND_COLOURS[spec]
    try:
        c = np.asarray(spec if isinstance(spec, (tuple, list, np.ndarray)) else [], np.float32)
    except (TypeError, ValueError):
        c = np.zeros(0)
    if c.shape != (3,) or not ((0 <= c) & (c <= 255)).all():
        raise SDLibError(f"scene_or_background must be None, a Scene, a Background, an RGB triple in "
                         f"0..255 or one of {', '.join(S.BACKGROUND_COLOURS)}; got {spec!r:.60}.")
    return np.stack([c, c])[None]  # (1, 2, 3)


def _nearest_background(px, segments):
    """Distance from each pixel (N, 3) to the background model, and the nearest model colour."""
    best_d, best_q = None, None
    for a, b in segments:
        d = b - a
        t = np.clip((px - a) @ d / max(float(d @ d), 1e-6), 0, 1)
        q = a + t[:, None] * d
        dist = np.linalg.norm(px - q, axis=1)
        if best_d is None:
            best_d, best_q = dist, q
        else:
            closer = dist < best_d
            best_d = np.where(closer, dist, best_d)
            best_q = np.where(closer[:, None], q, best_q)
    return best_d, best_q


def _pixel_scale(width):
    """How much larger than the reference 64 px the pixel thresholds are: blobs of noise and the
    blur of a VAE grow with the image (a latent cell is 8 px at any size), so at 128 px MIN_AREA
    is 4x and EDGE_DILATION 2x. Never below 1: small images keep the 64 px values."""
    return max(1.0, width / REFERENCE_SIZE)


def _coverage(img, blob, dist, nearest):
    """(the blob's colour, its soft coverage (H, W) in [0, 1]): where each pixel near the blob lies
    between its background colour and the object's colour."""
    core = blob & (dist >= 0.8 * np.percentile(dist[blob], 90))
    fg = np.median(img[core], axis=0)
    region = ndimage.binary_dilation(blob, iterations=round(EDGE_DILATION * _pixel_scale(dist.shape[1])))
    ax = fg - nearest
    alpha = np.clip(((img - nearest) * ax).sum(-1) / np.maximum((ax * ax).sum(-1), 1e-6), 0, 1)
    return fg, np.where(region, alpha, 0).astype(np.float32)


def _judge_blob(img, blob, dist, nearest, size, colours):
    """Colour (the nearest name in `colours`), shape, size and position of one connected blob of
    object pixels."""
    h, w = dist.shape
    fg, alpha = _coverage(img, blob, dist, nearest)
    area = float(alpha.sum())
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    cx, cy = float((alpha * xs).sum() / area), float((alpha * ys).sum() / area)
    scores = {}
    for shape in SHAPES:
        unit_area, ux, uy = unit_area_centroid(shape)
        extent = np.sqrt(area / unit_area)
        tmpl = shape_alpha(shape, (cx - ux * extent, cy - uy * extent), extent, size)
        scores[shape] = float(np.minimum(alpha, tmpl).sum() / np.maximum(alpha, tmpl).sum())
    shape = max(scores, key=scores.get)
    colour, colour_distance = _nearest_name(fg, colours)
    hard_y, hard_x = np.nonzero(alpha >= 0.5)
    if len(hard_x) == 0:
        hard_y, hard_x = np.nonzero(blob)
    bx, by = (hard_x.min() + hard_x.max() + 1) / 2 / w, (hard_y.min() + hard_y.max() + 1) / 2 / h
    extent_frac = max(hard_x.max() - hard_x.min() + 1, hard_y.max() - hard_y.min() + 1) / size
    col, row = (int(np.digitize(v, [0.4, 0.6])) - 1 for v in (bx, by))
    position = next(n for n, cr in S.POSITIONS.items() if cr == (col, row))
    size_name = ("small", "medium", "large")[int(np.digitize(extent_frac, [0.28, 0.405]))]
    return dict(colour=colour if colour_distance <= MAX_COLOUR_DISTANCE else None,
                shape=shape if scores[shape] >= MIN_SHAPE_SCORE else None,
                size=size_name, position=position, shape_score=scores[shape],
                colour_distance=colour_distance, rgb=tuple(float(v) for v in fg),
                area=area, center=(bx, by), scores=scores)


def _blobs(img, scene_or_background, max_objects):
    """(the largest connected blobs of pixels far from the background, largest first, each (H, W)
    bool; each pixel's distance to the background; the nearest background colour (H, W, 3))."""
    h, w, _ = img.shape
    segments = _segments(scene_or_background, img)
    dist, nearest = _nearest_background(img.reshape(-1, 3), segments)
    dist, nearest = dist.reshape(h, w), nearest.reshape(h, w, 3)
    labels, n = ndimage.label(dist > ROUGH_DISTANCE, structure=np.ones((3, 3)))
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    min_area = MIN_AREA * _pixel_scale(w) ** 2
    keep = [i + 1 for i in np.argsort(-areas)
            if min_area <= areas[i] <= MAX_AREA_FRAC * h * w][:max_objects]
    return [labels == i for i in keep], dist, nearest


def object_mask(image, scene_or_background=None):
    """Where the largest object is: (H, W) bool, the pixels it covers at least half (the soft
    coverage `judge` measures shapes with); all False when no object is found. Compared with a
    control map's object by `metrics.iou` (notebooks/09)."""
    img = _pixels(image)  # (H, W, 3)
    blobs, dist, nearest = _blobs(img, scene_or_background, 1)
    if not blobs:
        return np.zeros(img.shape[:2], bool)
    return _coverage(img, blobs[0], dist, nearest)[1] >= 0.5


def judge(image, scene_or_background=None, max_objects=4, colours=None):
    """Judge one image (PIL, uint8 array, path or (3, H, W) tensor in [0, 1]).

    scene_or_background: a Scene/Background/RGB/colour name whose colours are the background, or
    None to estimate it from the border (right for generated images, whose background may not be
    the one asked for). Returns the largest object's colour, shape, size, position (None where
    nothing or nothing recognisable was found), the background's nearest colour name, and
    `objects`: the same for every blob, largest first.
    colours: the {name: (r, g, b)} table that colours are named from; None: the dataset's
    (`scenes.COLOURS`). A colour the model never learnt is judged by adding it, e.g.
    `dict(scenes.COLOURS, cyan=(0, 225, 225))` (notebooks/07).
    """
    img = _pixels(image)  # (H, W, 3)
    max_objects = check_int("max_objects", max_objects, lo=1)
    colours = _check_colours(colours)
    blobs, dist, nearest = _blobs(img, scene_or_background, max_objects)
    objects = [_judge_blob(img, blob, dist, nearest, img.shape[1], colours) for blob in blobs]
    border = np.median(_border(img), axis=0)
    result = dict(objects[0] if objects else EMPTY)
    result.update(background=_nearest_name(border, _BACKGROUND_TONES)[0], objects=objects,
                  n_objects=len(objects))
    return result


def _check_colours(colours):
    """None -> scenes.COLOURS; else a non-empty {name: (r, g, b)} with channels in 0..255."""
    if colours is None:
        return S.COLOURS
    ok = isinstance(colours, dict) and colours and all(
        isinstance(k, str) and isinstance(v, (tuple, list)) and len(v) == 3
        and all(isinstance(c, (int, float)) and 0 <= c <= 255 for c in v) for k, v in colours.items())
    if not ok:
        raise SDLibError(f"colours must be a dict of colour names to (r, g, b) in 0..255, such as "
                         f"dict(scenes.COLOURS, pink=(240, 110, 190)), got {colours!r:.80}.")
    return colours


def share_of(images, colour=None, shape=None, colours=None):
    """The share of images whose largest object has this colour and/or shape (judged with
    `colours`, see `judge`): the success rate of a learned concept (notebooks/07). At least one of
    colour and shape must be given."""
    if colour is None and shape is None:
        raise SDLibError("share_of needs a colour, a shape or both to look for, got neither.")
    if shape is not None:
        check_choice("shape", shape, SHAPES)
    colours = _check_colours(colours)
    if colour is not None:
        check_choice("colour", colour, tuple(colours))
    if not isinstance(images, (list, tuple)) or not images:
        raise SDLibError(f"images must be a non-empty list of images, got {type(images).__name__}.")
    hits = [(colour is None or v["colour"] == colour) and (shape is None or v["shape"] == shape)
            for v in (judge(im, colours=colours) for im in images)]
    return sum(hits) / len(hits)


def _match(verdict, scene):
    """Pair scene objects with the largest detected blobs (best of all orderings): per-object
    (colour_ok, shape_ok) for every object the scene asked for; missing blobs count as wrong."""
    wanted = scene.objects
    found = verdict["objects"][:len(wanted)] + [EMPTY] * max(0, len(wanted) - verdict["n_objects"])
    best = None
    for perm in permutations(found, len(wanted)):
        hits = [(f["colour"] == o.colour, f["shape"] == o.shape) for f, o in zip(perm, wanted)]
        if best is None or sum(map(sum, hits)) > sum(map(sum, best)):
            best = hits
    return best


def _check_images_and_scenes(images, scenes, use_scene_background):
    """The arguments every scoring function takes: images, one Scene each, a flag."""
    if not isinstance(images, (list, tuple, np.ndarray)):
        raise SDLibError(f"images must be a list of images or a uint8 batch (B, H, W, 3), got "
                         f"{type(images).__name__}.")
    bad = [k for k, s in enumerate(scenes) if not isinstance(s, S.Scene)] \
        if isinstance(scenes, (list, tuple)) else None
    if bad is None or bad:
        got = type(scenes).__name__ if bad is None else \
            f"a {type(scenes[bad[0]]).__name__} at scenes[{bad[0]}]"
        raise SDLibError(f"scenes must be a list of sdlib.builtin.scenes.Scene objects, got {got}.")
    if len(images) != len(scenes):
        raise SDLibError(f"images and scenes must have the same length (one scene per image), got "
                         f"{len(images)} images and {len(scenes)} scenes.")
    _check_bool("use_scene_background", use_scene_background)


def adherence(images, scenes, use_scene_background=False):
    """Fraction of asked-for objects drawn with the right colour, shape, and both, judged per
    object. Backgrounds are estimated from each image unless use_scene_background."""
    _check_images_and_scenes(images, scenes, use_scene_background)
    hits = []
    for image, scene in zip(images, scenes, strict=True):
        verdict = judge(image, scene if use_scene_background else None)
        hits += _match(verdict, scene)
    hits = np.asarray(hits, dtype=bool).reshape(-1, 2)
    n = len(hits)
    return dict(colour_acc=float(hits[:, 0].mean()) if n else float("nan"),
                shape_acc=float(hits[:, 1].mean()) if n else float("nan"),
                both_acc=float(hits.all(1).mean()) if n else float("nan"), n=n)


def objects_in(image, region):
    """(colour, shape) of each judged object whose centre lies where `region` (H, W, bool) is True,
    largest first: what was drawn inside a mask (notebooks/06, inpainting)."""
    region = np.asarray(region)
    h, w = _pixels(image).shape[:2]
    if region.dtype != bool or region.shape != (h, w):
        raise SDLibError(f"region must be a bool mask of shape {(h, w)} (the image's height, width), "
                         f"got {region.dtype} {region.shape}.")
    inside = lambda o: region[min(h - 1, int(o["center"][1] * h)), min(w - 1, int(o["center"][0] * w))]
    return [(o["colour"], o["shape"]) for o in judge(image)["objects"] if inside(o)]


# ---------------------------------------------------------------- the evaluation rows
def _blob_of(verdict, colour, fallback=True, taken=()):
    """The largest judged blob of this colour not in `taken`; else (fallback) the largest blob,
    so that where and how big are scored even when the colour is wrong (the colour row counts
    that); else None."""
    objects = [o for o in verdict["objects"] if not any(o is t for t in taken)]
    named = [o for o in objects if o["colour"] == colour]
    return named[0] if named else (objects[0] if objects and fallback else None)


def _part(v, parts):
    """Which part of an axis a fraction v lies in: -1, 0, 1 for thirds, -1, 1 for halves."""
    if parts == 3:
        return int(np.digitize(v, [1 / 3, 2 / 3])) - 1
    return -1 if v < 0.5 else 1


def in_named_part(center, position, parts=3):
    """Is `center` (x, y as fractions of the image) in the part(s) a position names? "left" names
    the x axis only (x in the left third, y anywhere), "top left" both axes, "middle" the middle
    third of both. parts=2: halves instead of thirds (for sides and corners only)."""
    check_choice("position", position, list(S.POSITIONS))
    if parts not in (2, 3) or isinstance(parts, bool):
        raise SDLibError(f"parts must be 2 (halves) or 3 (thirds), got {parts!r}.")
    if parts == 2 and position == "middle":
        raise SDLibError('position "middle" has no half; use parts=3.')
    col, row = S.POSITIONS[position]  # (-1, 0) for "left"
    named = [(v, c) for v, c in zip(center, (col, row)) if c != 0] or list(zip(center, (0, 0)))
    return all(_part(v, parts) == c for v, c in named)


def _row_result(ok):
    """Per-item booleans and their mean, as the rows report them."""
    ok = [bool(x) for x in ok]
    return dict(acc=float(np.mean(ok)) if ok else float("nan"), n=len(ok), ok=ok)


def position_ok(images, scenes, use_scene_background=False):
    """Position rows (sides, corners): is the object drawn where the prompt put it? Per image,
    the largest blob of the scene's colour (else the largest blob) must have its centre in the
    named third(s) of the image (`in_named_part`). The centre is that of the blob's bounding box,
    the point `scenes.make_obj` places on the 3x3 grid (a large triangle "at the top" has its
    area centroid below the top third). Returns {"acc", "n", "ok": one bool per image}."""
    _check_images_and_scenes(images, scenes, use_scene_background)
    ok = []
    for image, scene in zip(images, scenes, strict=True):
        blob = _blob_of(judge(image, scene if use_scene_background else None), scene.main.colour)
        ok.append(blob is not None and in_named_part(blob["center"], scene.main.position))
    return _row_result(ok)


def size_ok(image_pairs, scene_pairs, use_scene_background=False):
    """Size row: image_pairs are (small, large) images drawn from the same seed for "a small X"
    and "a large X"; scene_pairs their (small, large) scenes. A pair is right when the large
    image's object (largest blob of the scene's colour, else the largest blob) covers more than
    SIZE_RATIO times the small one's area (soft mask area, as `judge` measures it). Returns
    {"acc", "n", "ok": one bool per pair}."""
    for name, pairs in (("image_pairs", image_pairs), ("scene_pairs", scene_pairs)):
        if not isinstance(pairs, (list, tuple)) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs):
            raise SDLibError(f"{name} must be a list of (small, large) pairs, got "
                             f"{type(pairs).__name__}.")
    smalls, larges = [p[0] for p in image_pairs], [p[1] for p in image_pairs]
    _check_images_and_scenes(smalls, [p[0] for p in scene_pairs], use_scene_background)
    _check_images_and_scenes(larges, [p[1] for p in scene_pairs], use_scene_background)
    ok = []
    for small, large, (small_scene, large_scene) in zip(smalls, larges, scene_pairs):
        blobs = [_blob_of(judge(im, sc if use_scene_background else None), sc.main.colour)
                 for im, sc in ((small, small_scene), (large, large_scene))]
        ok.append(None not in blobs and blobs[1]["area"] > SIZE_RATIO * blobs[0]["area"])
    return _row_result(ok)


def two_objects_ok(images, scenes, use_scene_background=False):
    """Two-object row: "a red circle on the left and a blue square on the right". Per image, each
    of the scene's objects needs a blob of its colour (a different blob each, no fallback to
    another colour) whose centre lies in its named half (`in_named_part`, parts=2). Returns
    {"acc", "n", "ok": one bool per image}."""
    _check_images_and_scenes(images, scenes, use_scene_background)
    ok = []
    for image, scene in zip(images, scenes, strict=True):
        verdict, taken = judge(image, scene if use_scene_background else None), []
        for obj in scene.objects:
            blob = _blob_of(verdict, obj.colour, fallback=False, taken=taken)
            if blob is None or not in_named_part(blob["center"], obj.position, parts=2):
                break
            taken.append(blob)
        ok.append(len(taken) == len(scene.objects))
    return _row_result(ok)


def validate(n=500, seed=0, size=64, use_scene_background=False, verbose=True):
    """The checker's own accuracy on ground-truth renders of single-object scenes (all pairs,
    all backgrounds): what a perfect generator would score. Also size/position accuracy and the
    shapes most often confused, so a failure says where to look."""
    n = check_int("n", n, lo=1)
    seed = check_int("seed", seed, lo=0)
    size = check_int("size", size, lo=MIN_SIZE)
    _check_bool("use_scene_background", use_scene_background)
    _check_bool("verbose", verbose)
    images, _, scenes = S.make_batch(n, seed, size, split="all", two_object_prob=0.0)
    right = {k: 0 for k in ("colour", "shape", "size", "position")}
    confusions = {}
    for image, scene in zip(images, scenes):
        v = judge(image, scene if use_scene_background else None)
        truth = scene.main
        for k in right:
            right[k] += v[k] == getattr(truth, k)
        if v["shape"] != truth.shape:
            key = (truth.shape, v["shape"])
            confusions[key] = confusions.get(key, 0) + 1
    result = {f"{k}_acc": right[k] / n for k in right}
    result["confusions"] = dict(sorted(confusions.items(), key=lambda kv: -kv[1]))
    if verbose:
        print(", ".join(f"{k} {v:.3f}" for k, v in result.items() if k.endswith("acc")),
              f"on {n} ground-truth renders; shape confusions {result['confusions']}")
    return result


# ---------------------------------------------------------------- the judge's own error rate
ATTRIBUTES = ("colour", "shape", "size", "position", "background")  # what error_rates scores


def _round_trip(sd, images, batch_size=16):
    """Images (uint8 (B, H, W, 3)) through sd's VAE and back (encode the mean, decode): as soft
    as the pictures that model generates."""
    from ..images import to_pil
    from ..models.vae import decode, encode

    out = []
    for i in range(0, len(images), batch_size):
        out += to_pil(decode(sd, encode(sd, images[i:i + batch_size])))
    return out


def error_rates(n=200, seed=0, size=64, sd=None, verbose=False):
    """The judge's error rate per attribute (`ATTRIBUTES`) on n single-object scenes whose truth is
    known: `scenes.make_batch` (every colour + shape pair, size, place; solid and textured
    backgrounds), judged from the pixels alone (background estimated, as for generated pictures).

    sd: None renders the scenes at `size`; a loaded bundle renders them at sd.image_size and passes
    them through its VAE (encode, decode), so that they are as soft as the pictures it generates.
    Returns {attribute: share of scenes judged wrong, "n": {attribute: scenes scored},
    "mistakes": {attribute: [(truth, judged), ...]}}; verbose prints one line. The background is
    scored on solid backgrounds only (a caption names a texture's kind, not its colour). Taught in
    notebooks/05."""
    n = check_int("n", n, lo=1)
    seed = check_int("seed", seed, lo=0)
    size = check_int("size", size, lo=MIN_SIZE)
    _check_bool("verbose", verbose)
    if sd is not None:
        size = check_sd(sd).image_size
    images, _, scenes = S.make_batch(n, seed, size, split="all", two_object_prob=0.0)
    if sd is not None:
        images = _round_trip(sd, images)
    mistakes, counted = {k: [] for k in ATTRIBUTES}, {k: 0 for k in ATTRIBUTES}
    for image, scene in zip(images, scenes):
        v = judge(image)
        truth = dict(vars(scene.main), background=scene.background.colour)
        for k in ATTRIBUTES:
            if k == "background" and scene.background.kind != "solid":
                continue  # captions name a texture's kind, not its colour
            counted[k] += 1
            if v[k] != truth[k]:
                mistakes[k].append((truth[k], v[k]))
    result = {k: len(mistakes[k]) / max(counted[k], 1) for k in ATTRIBUTES}
    result.update(n=counted, mistakes=mistakes)
    if verbose:
        print(f"judge errors on known scenes ({'rendered' if sd is None else 'VAE round trip'}, "
              f"{size} px): " + ", ".join(f"{k} {len(mistakes[k])} of {counted[k]}" for k in ATTRIBUTES))
    return result
