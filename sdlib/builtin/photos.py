"""Real photos for the built-in VAE, from files that ship with scikit-image and matplotlib.

Why: a VAE trained on flat coloured shapes alone turns a photo into a blob (14.6 dB on the
astronaut with the first built-in model), and notebook 01 shows exactly that round trip. So the
VAE also learns from crops of every photo that ships offline, at many scales, plus procedural
textures; one photo (`HELD_OUT_PHOTO`, skimage's astronaut) is never trained on and measures how
well the VAE keeps a picture it has not seen (`sdlib.builtin.evaluate.photo_psnr`).

    crops = photo_crops(16, seed=0, size=64)     # uint8 (16, 64, 64, 3)
    test = held_out_photo(128)                   # PIL 128 x 128, the astronaut

Everything is read from the installed packages: nothing is downloaded.
"""
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

HELD_OUT_PHOTO = "astronaut"
# skimage.data names whose files ship inside scikit-image (no download); grey ones become RGB.
SKIMAGE_PHOTOS = ("chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "colorwheel", "logo", "brick", "camera", "grass",
                  "gravel", "moon", "coins", "clock", "page", "text", "cell")
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")


def _rgb(a):
    """Any skimage/PIL array -> uint8 (H, W, 3)."""
    a = np.asarray(a)
    if a.dtype != np.uint8:
        a = np.clip(a * (255 if a.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    return np.ascontiguousarray(a[..., :3])


def _skimage(name):
    from skimage import data

    return _rgb(getattr(data, name)())


@lru_cache(maxsize=1)
def training_photos():
    """Every offline photo except the held-out one, as uint8 (H, W, 3) arrays (about 20)."""
    import matplotlib

    photos = [_skimage(name) for name in SKIMAGE_PHOTOS]
    folder = Path(matplotlib.get_data_path()) / "sample_data"
    photos += [_rgb(Image.open(folder / name).convert("RGB")) for name in MATPLOTLIB_PHOTOS
               if (folder / name).exists()]
    return tuple(photos)


def held_out_photo(size):
    """The photo the VAE never sees in training (the astronaut), as notebooks 01 and 02 load it:
    `sdlib.load_image(..., size=size)`, centre-cropped and resized (a PIL image)."""
    from ..images import load_image

    return load_image(_skimage(HELD_OUT_PHOTO), size=size)


def photo_crops(n, seed, size):
    """n random square crops of the training photos, uint8 (n, size, size, 3).

    Each crop picks a photo, a side between `size` and the photo's shorter side (log-uniform, so
    close-ups and whole views are equally common), a place and a horizontal flip, and is resized
    to size x size with a box filter (the way a photo is shrunk for the model)."""
    rng = np.random.default_rng(seed)
    photos = training_photos()
    out = np.empty((n, size, size, 3), np.uint8)
    for k in range(n):
        a = photos[rng.integers(len(photos))]
        h, w = a.shape[:2]
        lo, hi = min(size, h, w), min(h, w)
        side = int(round(np.exp(rng.uniform(np.log(lo), np.log(hi)))))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = Image.fromarray(a[top:top + side, left:left + side]).resize((size, size), Image.BOX)
        out[k] = np.asarray(crop)[:, ::-1] if rng.random() < 0.5 else np.asarray(crop)
    return out


def noise_textures(n, seed, size):
    """n procedural textures, uint8 (n, size, size, 3): smooth random colour fields at a random
    scale plus fine grain, so the VAE also meets colours and frequencies no photo here has."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for k in range(n):
        cells = int(rng.choice([2, 4, 8, 16, 32]))
        coarse = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), np.float32)
        grain = rng.normal(0, rng.uniform(0, 25), (size, size, 1 if rng.random() < 0.5 else 3))
        out[k] = np.clip(field + grain, 0, 255).astype(np.uint8)
    return out
