"""How close is a reconstruction? Mean squared error, PSNR and a per-pixel error map.

Why: "the VAE loses a little detail" means nothing until it is a number and a picture. PSNR
(peak signal-to-noise ratio, in dB) is the number image-compression papers report for exactly
this; higher is better, +6 dB is half the error, ~30 dB and up looks alike to the eye at a glance.

All functions take PIL images, uint8 arrays, or float tensors in [0, 1] of shape (B, 3, H, W) or
(3, H, W) (on any device and dtype: they are compared in float32 on the CPU), so a decoded batch
from `sdlib.decode` and a PIL photo can be compared directly.
"""
import math
import numbers

import numpy as np
import torch

from ..checks import check_number
from ..errors import SDLibError
from ..images import check_unit_range, to_tensor

BOX = ("left", "top", "right", "bottom")  # a region, in pixels, as PIL's Image.crop takes it


def _pair(a, b):
    """Both images as float32 CPU tensors (B, 3, H, W) in [0, 1], checked to have one shape."""
    a, b = (check_unit_range(name, to_tensor(x.detach().float().cpu() if isinstance(x, torch.Tensor)
                                             else x)) for name, x in (("a", a), ("b", b)))
    if a.shape[-3:] != b.shape[-3:] or (a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0])):
        raise SDLibError(f"cannot compare images of shapes {tuple(a.shape)} and {tuple(b.shape)}; "
                         "a and b must be one size (and batch, or one of them a single image): "
                         "decode/resize them to the same size first.")
    return a, b


def _one_or_many(values):
    """A float for a single image pair, else the (B,) tensor."""
    return float(values[0]) if values.numel() == 1 else values


def mse(a, b):
    """Mean squared error per image, on the [0, 1] scale: a float for one image, else (B,).
    Used by psnr; taught with it in notebooks/01, section 2."""
    a, b = _pair(a, b)
    return _one_or_many(((a - b) ** 2).mean(dim=(1, 2, 3)))


def psnr(a, b):
    """Peak signal-to-noise ratio in dB, 10 log10(1 / MSE) for images in [0, 1].

    A float for one image pair, else a (B,) tensor; identical images give inf. Equal to
    skimage.metrics.peak_signal_noise_ratio(a, b, data_range=1) (tests check it).
    Taught in notebooks/01, sections 2 and 4 (used in notebooks/02, 07 and 08).
    """
    a, b = _pair(a, b)
    err = ((a.double() - b.double()) ** 2).mean(dim=(1, 2, 3))  # (B,)
    out = torch.where(err > 0, 10 * torch.log10(1.0 / err.clamp_min(torch.finfo(err.dtype).tiny)),
                      torch.full_like(err, math.inf))
    return _one_or_many(out.float())


def error_map(a, b, gain=1.0):
    """Per-pixel absolute error averaged over RGB, (B, H, W) in [0, 1] (times `gain`, clipped).

    Plot it with a grey or "magma" colormap: bright where the reconstruction differs. A gain of
    4 or so makes small errors visible; say so in the title when you use one.
    Used by error_image; taught in notebooks/01, sections 2 and 4.
    """
    gain = check_number("gain", gain, lo=0, lo_open=True)
    a, b = _pair(a, b)
    return ((a - b).abs().mean(dim=1) * gain).clamp(0, 1)  # (B, H, W)


def error_image(a, b, gain=4.0):
    """`error_map` as a grey RGB tensor (B, 3, H, W) in [0, 1]: white = wrong.

    For image grids (`sdlib.show_images`), which would otherwise stretch a 2-D map's colour scale
    to its own min and max and make a tiny error look as bad as a large one.
    Taught in notebooks/01, sections 2 and 4 (used in notebooks/06 and 08).
    """
    return error_map(a, b, gain)[:, None].expand(-1, 3, -1, -1)  # (B, 3, H, W)


def region_psnr(a, b, boxes):
    """PSNR of each named region: `boxes` maps a name to (left, top, right, bottom) in pixels.

    Why: one number for a whole picture hides where the error is; a smooth sky and a line of
    small text in the same image can differ by 10 dB or more. Returns {name: float} (first image).
    Taught in notebooks/01, section 7.
    """
    a, b = _pair(a, b)
    if not isinstance(boxes, dict) or not boxes:
        raise SDLibError(f"boxes must be a non-empty dict {{name: (left, top, right, bottom)}}, "
                         f"got {type(boxes).__name__}.")
    out = {}
    for name, box in boxes.items():
        if not (isinstance(box, (tuple, list)) and len(box) == len(BOX) and all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in box)):
            raise SDLibError(f"boxes[{name!r}] must be {len(BOX)} whole numbers of pixels "
                             f"({', '.join(BOX)}), got {box!r}.")
        left, top, right, bottom = box
        if not (0 <= left < right <= a.shape[-1] and 0 <= top < bottom <= a.shape[-2]):
            raise SDLibError(f"region {name!r} box {(left, top, right, bottom)} is outside the "
                             f"{a.shape[-1]}x{a.shape[-2]} image.")
        crop = (slice(None), slice(None), slice(top, bottom), slice(left, right))
        out[name] = psnr(a[crop][:1], b[crop][:1])
    return out


def _region(region, a):
    """A (H, W) bool mask matching images a (B, 3, H, W), as a CPU tensor."""
    region = torch.as_tensor(np.asarray(region) if not isinstance(region, torch.Tensor) else region)
    if region.dtype != torch.bool or tuple(region.shape) != tuple(a.shape[-2:]) or not region.any():
        raise SDLibError(f"region must be a non-empty bool mask of shape {tuple(a.shape[-2:])} (the "
                         f"images' height, width), got {region.dtype} {tuple(region.shape)}.")
    return region.cpu()


def psnr_in(a, b, region):
    """PSNR (dB) of images a against b over the pixels where `region` (H, W, bool) is True: a list,
    one value per image of a. The kept part of an inpainted picture, the rim of a hole: a number
    for the part that matters. Taught in notebooks/06 (inpainting)."""
    a, b = _pair(a, b)
    region = _region(region, a)
    a, b = a[..., region][..., None, :], b[..., region][..., None, :]  # (B, 3, 1, N): the region's pixels
    return np.atleast_1d(np.asarray(psnr(a, b), dtype=float)).tolist()


def edge_step(x, region):
    """Mean |difference| (0..1 scale) between neighbouring pixels on the two sides of `region`'s
    edge (H, W, bool), per image of x: how visible a seam is. Taught in notebooks/06."""
    x, _ = _pair(x, x)
    region = _region(region, x)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(1)[:, region[:, 1:] != region[:, :-1]]  # across vertical edges
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(1)[:, region[1:] != region[:-1]]  # across horizontal edges
    return torch.cat([dx, dy], 1).mean(1).tolist()


def iou(a, b):
    """Intersection over union of two masks (H, W) (bool, or numbers: > 0.5 is inside):
        IoU = |A and B| / |A or B|,  1 when they cover the same pixels, 0 when they do not meet
    (1 when both are empty). How closely a picture's object follows a control map's (notebooks/09)."""
    a, b = (np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x) for x in (a, b))
    if a.ndim != 2 or a.shape != b.shape:
        raise SDLibError(f"a and b must be masks (H, W) of one size, got {a.shape} and {b.shape}.")
    a, b = a > 0.5, b > 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
