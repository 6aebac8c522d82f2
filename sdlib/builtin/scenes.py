"""A seeded, procedural captioned image dataset: coloured shapes on plain or textured backgrounds.

Why: the course trains a small Stable Diffusion model from scratch with no downloads, so it needs
images whose content is known exactly. Every caption names what is drawn, so `checker.judge` can
score a generated image against its prompt; and a few colour+shape pairs (`HELD_OUT`) never occur
in training, so we can ask whether the model composes "purple" and "triangle" it has seen apart.

    images, captions, scenes = make_batch(16, seed=0)      # uint8 (16, 64, 64, 3), list, list
    render(make_scene("red", "circle", position="left")).save("red_circle.png")

Everything random comes from a `np.random.default_rng` passed in: same seed, same pixels.
"""
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .shapes import SHAPES, shape_alpha, texture, unit_area_centroid  # noqa: F401 (re-exported)

COLOURS = {  # canonical RGB of the object colours; each image jitters every channel by +-JITTER
    "red": (215, 30, 30), "green": (35, 160, 55), "blue": (35, 75, 215),
    "yellow": (245, 210, 30), "purple": (135, 55, 175), "orange": (245, 130, 20),
    "white": (250, 250, 250), "black": (20, 20, 20)}
BACKGROUND_COLOURS = dict(COLOURS, grey=(128, 128, 128))
SIZES = {"small": 0.22, "medium": 0.34, "large": 0.47}  # bounding-box side / image side
POSITIONS = {"middle": (0, 0), "left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1),
             "top left": (-1, -1), "top right": (1, -1), "bottom left": (-1, 1),
             "bottom right": (1, 1)}  # name -> (column, row) in a 3x3 grid
TEXTURES = ("striped", "checked", "gradient")  # drawn by shapes.texture
# One held-out colour per shape, six different colours: every colour and every shape is still seen.
HELD_OUT = (("yellow", "circle"), ("orange", "square"), ("purple", "triangle"),
            ("green", "star"), ("blue", "cross"), ("red", "diamond"))
TRAIN_PAIRS = tuple((c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT)
MIN_CONTRAST = 100  # RGB distance between an object's colour and every background tone
JITTER = 8          # +- per channel on object and background colours
GRID_STEP = 0.23    # centres of the 3x3 grid at 0.27, 0.5, 0.73 of the image
MARGIN = 0.05       # objects keep this far (fraction of the image) from the border

SIZE_WORDS = {"small": ("small", "little"), "medium": ("medium",), "large": ("large", "big")}
POSITION_WORDS = {
    "middle": ("in the middle", "in the centre", "in the center"),
    "left": ("on the left",), "right": ("on the right",),
    "top": ("at the top",), "bottom": ("at the bottom",),
    **{f"{v} {h}": (f"in the {v} {h}", f"in the {v} {h} corner", f"at the {v} {h}")
       for v in ("top", "bottom") for h in ("left", "right")}}
PREFIXES = ("a picture of", "an image of", "a drawing of", "there is")
TWO_OBJECT_PROB = 0.3  # share of training scenes with two objects, one on each side
POSITION_SHARES = {"middle": 0.2, "side": 0.4, "corner": 0.4}  # a balanced share of each kind
SIDES = ("left", "right", "top", "bottom")
CORNERS = ("top left", "top right", "bottom left", "bottom right")


@dataclass(frozen=True)
class Obj:
    """One shape. `rgb`, `center` (x, y as fractions) and `extent` (bbox side as a fraction) are
    the jittered values the renderer uses; the names are what a caption may say."""
    shape: str
    colour: str
    size: str
    position: str
    rgb: tuple
    center: tuple
    extent: float


@dataclass(frozen=True)
class Background:
    """kind: "solid" or one of TEXTURES. `tones` are the one or two RGB colours it is made of;
    `colour` names the solid colour (for textures, the pale tint they were made from)."""
    kind: str
    colour: str
    tones: tuple
    period: float = 0.0  # stripe/check period as a fraction of the image
    angle: float = 0.0   # radians: direction of stripes' variation or of the gradient


@dataclass(frozen=True)
class Scene:
    """What one image shows: 1 or 2 `Obj`s (the first is `main`) on a `Background`."""
    objects: tuple
    background: Background

    @property
    def main(self):
        return self.objects[0]


def background_pixels(bg, size):
    """Float32 (size, size, 3) background image."""
    return texture(bg.kind, bg.tones, bg.period * size, bg.angle, size)


def render(scene, size=64):
    """Draw a scene: RGB PIL image, deterministic (no randomness here; the jitter is in `scene`)."""
    return Image.fromarray(_render_array(scene, size))


def _render_array(scene, size):
    img = background_pixels(scene.background, size)
    for obj in scene.objects:
        center = (obj.center[0] * size, obj.center[1] * size)
        a = shape_alpha(obj.shape, center, obj.extent * size, size)[..., None]
        img += a * (np.asarray(obj.rgb, dtype=np.float32) - img)
    return np.rint(img).astype(np.uint8)


# ---------------------------------------------------------------- sampling
def _jitter(rng, rgb):
    return tuple(int(v) for v in np.clip(np.asarray(rgb) + rng.integers(-JITTER, JITTER + 1, 3),
                                         0, 255))


def _pale(rgb, amount=0.5):
    return tuple(round(v + amount * (255 - v)) for v in rgb)


def make_obj(colour, shape, size="medium", position="middle", rng=None):
    """An object with canonical values, or jittered ones when an rng is given."""
    extent = SIZES[size] * (1 if rng is None else rng.uniform(0.92, 1.08))
    col, row = POSITIONS[position]
    center = np.array([0.5 + GRID_STEP * col, 0.5 + GRID_STEP * row])
    if rng is not None:
        center += rng.uniform(-0.03, 0.03, 2)
    lo = extent / 2 + MARGIN
    cx, cy = np.clip(center, lo, 1 - lo)
    rgb = COLOURS[colour] if rng is None else _jitter(rng, COLOURS[colour])
    return Obj(shape, colour, size, position, rgb, (float(cx), float(cy)), float(extent))


def make_scene(colour, shape, size="medium", position="middle", background="white"):
    """A canonical single-object scene on a solid background, for notebooks and tests."""
    bg = Background("solid", background, (BACKGROUND_COLOURS[background],))
    return Scene((make_obj(colour, shape, size, position),), bg)


def _contrast_ok(tones, objects):
    return all(np.linalg.norm(np.subtract(t, COLOURS[o.colour])) >= MIN_CONTRAST
               for t in tones for o in objects)


def _tones(kind, base):
    """A solid colour, or a texture's two tones: the second a little darker, low contrast."""
    if kind == "solid":
        return (base,)
    dark = 40 if kind == "gradient" else 28
    return (base, tuple(max(v - dark, 0) for v in base))


def sample_background(rng, objects, texture_prob=0.45):
    """A solid named colour, or a pale low-contrast texture, far from every object's colour."""
    kind = "solid" if rng.random() >= texture_prob else TEXTURES[rng.integers(len(TEXTURES))]
    names = list(BACKGROUND_COLOURS)
    for i in rng.permutation(len(names)):
        name = names[i]
        base = BACKGROUND_COLOURS[name] if kind == "solid" else _pale(BACKGROUND_COLOURS[name])
        if _contrast_ok(_tones(kind, base), objects):
            break
    tones = _tones(kind, _jitter(rng, base))
    period = rng.uniform(0.14, 0.2) if kind == "striped" else rng.uniform(0.25, 0.34)
    angle = (rng.integers(4) * np.pi / 4) if kind == "striped" else rng.uniform(0, 2 * np.pi)
    return Background(kind, name, tones, float(period) if kind != "solid" else 0.0,
                      float(angle) if kind in ("striped", "gradient") else 0.0)


def sample_position(rng):
    """A grid position: the middle, one of the 4 sides or one of the 4 corners (POSITION_SHARES),
    so "on the left" and "in the top right corner" are each seen often enough to be learned."""
    kind = rng.choice(list(POSITION_SHARES), p=list(POSITION_SHARES.values()))
    return "middle" if kind == "middle" else pick(rng, SIDES if kind == "side" else CORNERS)


def sample_scene(rng, split="train", two_object_prob=TWO_OBJECT_PROB):
    """A random scene. split "train": no object is a HELD_OUT pair; "heldout": one object whose
    colour+shape is a HELD_OUT pair; "all": any pair. Two objects sit in opposite grid cells."""
    pairs = {"train": TRAIN_PAIRS, "heldout": HELD_OUT, "all": TRAIN_PAIRS + HELD_OUT}[split]
    if split != "heldout" and rng.random() < two_object_prob:
        i, j = rng.choice(len(pairs), 2, replace=False)
        if rng.random() < 0.5:
            row = ("top ", "", "bottom ")[rng.integers(3)]
            spots = [(row + "left").strip(), (row + "right").strip()]
        else:
            col = ("", " left", " right")[rng.integers(3)]
            spots = [("top" + col), ("bottom" + col)]
        order = rng.permutation(2)
        objects = tuple(make_obj(*pairs[k], ("small", "medium")[rng.integers(2)],
                                 spots[o], rng) for k, o in zip((i, j), order))
    else:
        colour, shape = pairs[rng.integers(len(pairs))]
        objects = (make_obj(colour, shape, list(SIZES)[rng.integers(3)], sample_position(rng), rng),)
    return Scene(objects, sample_background(rng, objects))


# ---------------------------------------------------------------- captions
def with_article(word):
    return ("an " if word[0] in "aeiou" else "a ") + word


def pick(rng, options):
    return options[rng.integers(len(options))]


def _noun_phrase(obj, rng, with_size, article=True):
    words = ([pick(rng, SIZE_WORDS[obj.size])] if with_size else []) + [obj.colour, obj.shape]
    return with_article(" ".join(words)) if article else " ".join(words)


def background_phrase(bg, rng):
    """ "on a yellow background", "on a plain grey background", "on a striped background"."""
    if bg.kind != "solid":
        return f"on {with_article(bg.kind)} background"
    return f"on {with_article(('plain ' if rng.random() < 0.15 else '') + bg.colour)} background"


def caption(scene, rng):
    """A natural caption that always names every object's colour and shape, and its position
    whenever it is off-centre (so an unnamed position means the middle, and "on the left" is never
    contradicted by a silent off-centre example); size and background are said only sometimes
    (when omitted they were random, as in real data)."""
    with_size = rng.random() < 0.6
    with_position = any(o.position != "middle" for o in scene.objects) or rng.random() < 0.5
    with_background = rng.random() < 0.5
    prefix = pick(rng, PREFIXES) if rng.random() < 0.3 else ""
    article = bool(prefix) or rng.random() >= 0.2  # "red circle" sometimes, as in tags
    parts = []
    for obj in scene.objects:
        phrase = _noun_phrase(obj, rng, with_size, article)
        if with_position:
            phrase += " " + pick(rng, POSITION_WORDS[obj.position])
        parts.append(phrase)
    text = " and ".join(parts)
    if with_background:
        text += " " + background_phrase(scene.background, rng)
    return f"{prefix} {text}".strip()


def make_batch(n, seed, size=64, split="train", as_pil=False, two_object_prob=TWO_OBJECT_PROB):
    """n seeded (image, caption, scene) triples: images as uint8 (n, size, size, 3), or a list of
    PIL images with as_pil=True. About 0.6 ms an image at 64 px: 10,000 in ~6 s on one core."""
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, split, two_object_prob) for _ in range(n)]
    captions = [caption(s, rng) for s in scenes]
    images = np.stack([_render_array(s, size) for s in scenes]) if n else \
        np.zeros((0, size, size, 3), np.uint8)
    return ([Image.fromarray(im) for im in images] if as_pil else images), captions, scenes


def eval_prompts(n, seed):
    """n held-out evaluation items (prompt, scene): one object of a HELD_OUT pair, cycling through
    the pairs so each is equally represented; the prompt names colour and shape, and half the time
    the background too. The scene's size (and unnamed background) are just one draw; an unnamed
    position means the middle, as in the captions."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        colour, shape = HELD_OUT[i % len(HELD_OUT)]
        obj = make_obj(colour, shape, list(SIZES)[rng.integers(3)], "middle", rng)  # unnamed: middle
        scene = Scene((obj,), sample_background(rng, (obj,)))
        prompt = with_article(f"{colour} {shape}")
        if rng.random() < 0.5:
            prompt += " " + background_phrase(scene.background, rng)
        items.append((prompt, scene))
    return items
