"""The one pair of image converters: PIL/array/tensor <-> float tensors in [0, 1], (B, 3, H, W).

Everything user-facing is PIL; everything inside is a float tensor. RGBA and grey images are
converted to RGB with a note (alpha is dropped onto white), so a learner's own picture just works.
"""
import warnings

import numpy as np
import torch
from PIL import Image

from .errors import SDLibError


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


def load_image(image, size=None):
    """A file path, PIL image or uint8 array -> RGB PIL image, resized to `size` if given.

    size: an int (square) or (width, height); resizing uses a centre crop to keep the aspect.
    """
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        try:
            image = Image.open(image)
        except (OSError, ValueError) as e:
            raise SDLibError(f"cannot open image {image!r}: {e}") from None
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image if image.dtype == np.uint8 else
                                (np.clip(image, 0, 1) * 255).round().astype(np.uint8))
    if not isinstance(image, Image.Image):
        raise SDLibError(f"expected a path, PIL image or array, got {type(image).__name__}.")
    image = _to_rgb(image)
    if size is not None:
        w, h = (size, size) if isinstance(size, int) else size
        scale = max(w / image.width, h / image.height)
        rw, rh = max(w, round(image.width * scale)), max(h, round(image.height * scale))
        image = image.resize((rw, rh), Image.LANCZOS)
        left, top = (rw - w) // 2, (rh - h) // 2
        image = image.crop((left, top, left + w, top + h))
    return image


def to_tensor(images):
    """PIL image(s) / uint8 array(s) / tensor -> float tensor in [0, 1], (B, 3, H, W).

    A uint8 array batch (B, H, W, 3) converts in one go (the training data's layout)."""
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.dtype == np.uint8:
        if images.shape[-1] != 3:
            raise SDLibError(f"expected a uint8 image batch (B, H, W, 3), got {images.shape}.")
        return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
    if isinstance(images, torch.Tensor):
        x = images.float()
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1] != 3:
            raise SDLibError(f"expected an image tensor of shape (B, 3, H, W), got {tuple(x.shape)}.")
        return x
    if not isinstance(images, (list, tuple)):
        images = [images]
    arrays = [np.asarray(load_image(im), dtype=np.float32) / 255.0 for im in images]
    if len({a.shape for a in arrays}) > 1:
        raise SDLibError(f"images have different sizes: {[a.shape[:2] for a in arrays]}.")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)  # (B, 3, H, W)


def to_vae_range(x):
    """Images in [0, 1] -> [-1, 1], the range the VAE encodes (and decodes to)."""
    return x * 2 - 1


def from_vae_range(x):
    """The VAE's output in [-1, 1] -> images in [0, 1] (clamped, as the pipeline does)."""
    return (x / 2 + 0.5).clamp(0, 1)


def to_pil(x):
    """Float tensor in [0, 1], (B, 3, H, W) or (3, H, W) -> list of PIL images (rounded as diffusers)."""
    if x.ndim == 3:
        x = x[None]
    arr = (x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round()
    return [Image.fromarray(a.astype(np.uint8)) for a in arr]


def max_pixel_diff(a, b):
    """Largest difference between two images in 0..255 steps (0 means identical pixels)."""
    a, b = (np.asarray(load_image(x), dtype=np.int16) for x in (a, b))
    if a.shape != b.shape:
        raise SDLibError(f"images differ in size: {a.shape[:2]} vs {b.shape[:2]}.")
    return int(np.abs(a - b).max())
