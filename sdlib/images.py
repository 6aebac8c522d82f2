"""The one place images change form: PIL/array/tensor <-> float tensors in [0, 1], (B, 3, H, W).

Everything user-facing is PIL; everything inside is a float tensor. RGBA and grey images are
converted to RGB with a note (alpha is dropped onto white), so a learner's own picture just works.
`to_array` is the form for drawing and measuring: what `plot`, `animate` and the checker use, so
none of them converts by hand. Taught in notebooks/01 (pixels, tensors and the VAE's range).

    load_image("photo.png", size=64)   # path / PIL / array / one image tensor -> RGB PIL
    to_tensor([pil_a, pil_b])          # -> (2, 3, H, W) in [0, 1]
    to_pil(x)                          # (B, 3, H, W) in [0, 1] -> list of PIL
    to_array(x[0])                     # -> (H, W, 3) uint8; a 2-D map -> (H, W) float32
"""
import numbers
import warnings

import numpy as np
import torch
from PIL import Image

from .errors import SDLibError

# Float images are [0, 1]; values a little outside (rounding, an unclamped decode) are clamped as
# diffusers does. Farther out than this, the values follow another convention ([-1, 1] or 0..255).
RANGE_SLACK = 0.5
ACCEPTED = ("a path, a PIL image, an array (H, W) / (H, W, 3) / (H, W, 4), "
            "or a tensor (3, H, W) / (1, 3, H, W) in [0, 1]")


def _to_rgb(img):
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        warnings.warn(f"image mode {img.mode}: alpha composited onto white and converted to RGB",
                      stacklevel=3)
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    if img.mode in ("L", "1", "I", "I;16", "F"):
        warnings.warn(f"image mode {img.mode} (grey): converted to RGB", stacklevel=3)
        return img.convert("RGB")
    try:
        return img.convert("RGB")
    except Exception:
        raise SDLibError(f"cannot convert an image of mode {img.mode!r} to RGB.") from None


def check_unit_range(name, x):
    """x (float tensor or array) as given, or SDLibError when its values follow another convention
    ([-1, 1] or 0..255) than the [0, 1] every helper expects (up to RANGE_SLACK of rounding,
    clamped later).
    Used by the converters, the VAE and the metrics; taught in notebooks/01, section 2."""
    lo, hi = float(x.min()), float(x.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
        hint = ("; a VAE output in [-1, 1] converts with sdlib.images.from_vae_range" if lo < 0
                else "; divide 0..255 values by 255")
        raise SDLibError(f"{name} must hold values in [0, 1], got values in [{lo:.3g}, {hi:.3g}]{hint}.")
    return x


def _array_to_pil(name, a):
    """A (H, W), (H, W, 3) or (H, W, 4) array, uint8 or float in [0, 1] -> PIL (any mode)."""
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise SDLibError(f"{name} must be an array (H, W), (H, W, 3) or (H, W, 4), got shape {a.shape}.")
    if a.dtype == np.uint8:
        return Image.fromarray(a)
    if a.dtype.kind not in "fb":
        raise SDLibError(f"{name} must be a uint8 array (0..255) or a float array in [0, 1], got "
                         f"dtype {a.dtype}; e.g. use arr.astype(np.uint8).")
    a = a.astype(np.float32)
    check_unit_range(name, a)
    return Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8))


def _tensor_to_pil(name, x):
    """One image tensor (3, H, W) or (1, 3, H, W) in [0, 1] -> PIL."""
    if x.ndim not in (3, 4) or x.shape[-3] != 3 or (x.ndim == 4 and len(x) != 1):
        raise SDLibError(f"{name} must be one image tensor (3, H, W) or (1, 3, H, W), got "
                         f"{tuple(x.shape)}" + ("; pick one, e.g. x[0]." if x.ndim == 4 else "."))
    return to_pil(x)[0]


def _open(name, image):
    """Any one image (path, PIL, array, tensor) -> PIL in its own mode, or SDLibError."""
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        try:
            return Image.open(image)
        except (OSError, ValueError) as e:
            raise SDLibError(f"cannot open image {image!r}: {e}") from None
    if isinstance(image, np.ndarray):
        return _array_to_pil(name, image)
    if isinstance(image, torch.Tensor):
        return _tensor_to_pil(name, image)
    if not isinstance(image, Image.Image):
        raise SDLibError(f"{name} must be {ACCEPTED}; got {type(image).__name__}.")
    return image


def _check_size(size):
    """None, a side in pixels, or (width, height) -> None or (width, height)."""
    if size is None:
        return None
    def whole(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1

    pair = (size, size) if whole(size) else size
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(map(whole, pair))):
        raise SDLibError(f"size must be None, a whole number of pixels >= 1, or (width, height), "
                         f"got {size!r}.")
    return tuple(int(v) for v in pair)


def load_image(image, size=None, *, name="image"):
    """A path, PIL image, array (uint8, or float in [0, 1]) or one image tensor (3, H, W) /
    (1, 3, H, W) in [0, 1] -> RGB PIL image, resized to `size` if given.

    size: an int (square) or (width, height); resizing uses a centre crop to keep the aspect.
    name: what to call the image in an error message (callers pass their argument's name).
    Taught in notebooks/01, section 2 (used in notebooks/02, section 3 and notebooks/06).
    """
    size = _check_size(size)
    image = _to_rgb(_open(name, image))
    if size is not None:
        w, h = size
        scale = max(w / image.width, h / image.height)
        rw, rh = max(w, round(image.width * scale)), max(h, round(image.height * scale))
        image = image.resize((rw, rh), Image.LANCZOS)
        left, top = (rw - w) // 2, (rh - h) // 2
        image = image.crop((left, top, left + w, top + h))
    return image


def to_array(image, *, name="image"):
    """Any one image -> a numpy array to draw or measure.

    A colour image (anything `load_image` takes) -> (H, W, 3) uint8. A 2-D map (an (H, W) array
    or tensor: a latent channel, an error map, a table of vectors) -> (H, W) float32 with its
    values kept, for a colour map to scale.
    Used by show_images; images as arrays are taught in notebooks/01, section 2.
    """
    if isinstance(image, (np.ndarray, torch.Tensor)) and image.ndim == 2:
        if isinstance(image, torch.Tensor):
            image = image.detach().float().cpu().numpy()
        if image.dtype.kind not in "fiub":
            raise SDLibError(f"{name} must be a map of numbers, got dtype {image.dtype}.")
        return image.astype(np.float32)
    return np.asarray(load_image(image, name=name))  # (H, W, 3) uint8


def to_tensor(images):
    """PIL image(s) / array(s) / image tensor(s) / paths -> float tensor in [0, 1], (B, 3, H, W).

    A uint8 array batch (B, H, W, 3) converts in one go (the training data's layout).
    Taught in notebooks/01, section 2."""
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.dtype == np.uint8:
        if images.shape[-1] != 3:
            raise SDLibError(f"images must be a uint8 batch (B, H, W, 3), got {images.shape}.")
        return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
    if isinstance(images, torch.Tensor):
        x = images.float()
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != 3:
            raise SDLibError(f"images must be an image tensor of shape (B, 3, H, W), got "
                             f"{tuple(x.shape)}.")
        return x
    if not isinstance(images, (list, tuple)):
        named = [("images", images)]
    elif images:
        named = [(f"images[{k}]", im) for k, im in enumerate(images)]
    else:
        raise SDLibError("images must hold at least one image, got an empty list.")
    arrays = [np.asarray(load_image(im, name=n), dtype=np.float32) / 255.0
              for n, im in named]  # each (H, W, 3)
    if len({a.shape for a in arrays}) > 1:
        raise SDLibError(f"images have different sizes: {[a.shape[:2] for a in arrays]}.")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # (B, H, W, 3) -> (B, 3, H, W)


def _check_tensor(name, x):
    if not isinstance(x, torch.Tensor):
        raise SDLibError(f"{name} must be a torch tensor of images (B, 3, H, W), got "
                         f"{type(x).__name__}; convert with sdlib.to_tensor.")
    return x


def to_vae_range(x):
    """Images in [0, 1] -> [-1, 1], the range the VAE encodes (and decodes to).
    Used by vae.encode; the VAE's range is taught in notebooks/01, section 2."""
    check_unit_range("x", _check_tensor("x", x).detach())
    return x * 2 - 1


def from_vae_range(x):
    """The VAE's output in [-1, 1] -> images in [0, 1] (clamped, as the pipeline does).
    Used by vae.decode; the VAE's range is taught in notebooks/01, section 4."""
    return (_check_tensor("x", x) / 2 + 0.5).clamp(0, 1)


def to_pil(x):
    """Float tensor in [0, 1], (B, 3, H, W) or (3, H, W) -> list of PIL images (rounded as diffusers).
    Used from notebooks/00, section 2 on; the converters are taught in notebooks/01, section 2."""
    _check_tensor("x", x)
    if x.ndim not in (3, 4) or x.shape[-3] != 3 or x.numel() == 0:
        raise SDLibError(f"x must be an image tensor (B, 3, H, W) or (3, H, W), got {tuple(x.shape)}.")
    if x.ndim == 3:
        x = x[None]
    x = x.detach().float()
    check_unit_range("x", x)
    arr = (x.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round()  # (B, H, W, 3)
    return [Image.fromarray(a.astype(np.uint8)) for a in arr]


def max_pixel_diff(a, b):
    """Largest difference between two images in 0..255 steps (0 means identical pixels).
    Used from notebooks/00, section 2 on, to check a result by hand against the library's."""
    a, b = (np.asarray(load_image(x, name=n), dtype=np.int16) for x, n in ((a, "a"), (b, "b")))
    if a.shape != b.shape:
        raise SDLibError(f"images differ in size: {a.shape[:2]} vs {b.shape[:2]}.")
    return int(np.abs(a - b).max())
