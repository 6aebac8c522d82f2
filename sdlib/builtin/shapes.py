"""Shape geometry and rasterising, shared by the dataset (`scenes`) and the judge (`checker`).

Why a module of its own: the checker fits the very templates the dataset draws, so both must use
one definition of each shape and one rasteriser, or the checker would measure their mismatch.
Shapes are polygons in a unit bounding box (fixed orientation: a diamond is not a turned square
to the checker); they are drawn at 4x and box-filtered down, so edges are antialiased but sharp.
"""
import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")


def _star(points=5, inner=0.42):
    angles = -math.pi / 2 + np.arange(2 * points) * math.pi / points
    radius = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)


def _cross(arm=0.36):
    a, b = arm / 2, 0.5
    return np.array([(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b),
                     (-a, a), (-b, a), (-b, -a), (-a, -a)])


def _normalise(poly):
    """Centre the bounding box on (0, 0) and scale its longer side to 1."""
    poly = np.asarray(poly, dtype=np.float64)
    lo, hi = poly.min(0), poly.max(0)
    return (poly - (lo + hi) / 2) / (hi - lo).max()


_t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
UNIT_POLYGONS = {  # y points down, as in images; each fills a unit bounding box
    "circle": _normalise(np.stack([np.cos(_t), np.sin(_t)], 1)),
    "square": _normalise([(-1, -1), (1, -1), (1, 1), (-1, 1)]),
    "triangle": _normalise([(0, -math.sqrt(3)), (1, 0), (-1, 0)]),
    "star": _normalise(_star()),
    "cross": _normalise(_cross()),
    "diamond": _normalise([(0, -1), (0.76, 0), (0, 1), (-0.76, 0)]),
}


@lru_cache(maxsize=None)
def unit_area_centroid(shape):
    """(area, cx, cy) of a unit shape by the shoelace formula; the checker fits templates by
    area and centroid, which are robust statistics of a blurry blob, unlike its bounding box."""
    x, y = UNIT_POLYGONS[shape].T
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2
    return (float(abs(area)), float(((x + x1) * cross).sum() / (6 * area)),
            float(((y + y1) * cross).sum() / (6 * area)))


def shape_alpha(shape, center_px, extent_px, size, supersample=4):
    """Coverage in [0, 1], float32 (size, size), of a shape drawn with its bbox centred at
    `center_px` (x, y in pixels, pixel k spans [k, k+1)) and longer bbox side `extent_px`.
    Drawn at `supersample`x and box-filtered down: antialiased edges without blur."""
    s = supersample
    pts = (UNIT_POLYGONS[shape] * extent_px + center_px) * s - 0.5  # PIL puts pixel centres on ints
    canvas = Image.new("L", (size * s, size * s), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in pts], fill=255)
    return np.asarray(canvas.reduce(s), dtype=np.float32) / 255.0


@lru_cache(maxsize=8)
def _grid(size):
    c = np.arange(size, dtype=np.float32) + 0.5
    return np.meshgrid(c, c)  # x, y of pixel centres


def _stripes(u, period):
    """Antialiased square wave in [0, 1] along pixel coordinate u: 1 inside a stripe."""
    g = np.mod(u + period / 4, period) - period / 2
    return np.clip(0.5 + period / 4 - np.abs(g), 0, 1)


def texture(kind, tones, period_px, angle, size):
    """Float32 (size, size, 3) background: "solid" (tones[0]), "striped" (stripes whose colour
    varies along `angle` radians), "checked", or a linear "gradient" from tones[0] to tones[1]
    along `angle`. Edges are antialiased analytically, so textures stay crisp at any size."""
    tones = np.asarray(tones, dtype=np.float32)
    if kind == "solid":
        return np.broadcast_to(tones[0], (size, size, 3)).copy()
    x, y = _grid(size)
    if kind == "striped":
        t = _stripes(x * math.cos(angle) + y * math.sin(angle), period_px)
    elif kind == "checked":
        sx, sy = _stripes(x, period_px), _stripes(y, period_px)
        t = sx * (1 - sy) + (1 - sx) * sy
    elif kind == "gradient":
        u = (x / size - 0.5) * math.cos(angle) + (y / size - 0.5) * math.sin(angle)
        t = np.clip(u / (abs(math.cos(angle)) + abs(math.sin(angle))) + 0.5, 0, 1)
    else:
        raise ValueError(f"unknown background kind {kind!r}")
    return tones[0] + t[..., None] * (tones[1] - tones[0])
