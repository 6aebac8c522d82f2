"""Guidance: steering the sampler with the text (CFG sweeps) and with any differentiable loss.

Why: `sdlib.generate(..., loss_fn=..., loss_scale=...)` accepts any function of the decoded
x0_pred, an image batch (B, 3, H, W) in [0, 1], that returns a scalar to minimise. The losses
here are plain functions of that image, so they can be read, tested and swapped; `blue_fraction`
measures the effect; `sweep` runs one setting over several values with the same seed, so that the
only thing that changes between pictures is that setting.

    images = sweep(sd, "a red circle", "loss_scale", [0, 3, 10], loss_fn=blue_loss)
    blue_fraction(images)        # tensor (3,): rises with the loss scale
"""
import inspect

import torch

from .checks import check_number
from .errors import SDLibError
from .images import to_tensor
from .sampler import generate

# A loss scale that turns the built-in model's pictures clearly bluer with loss_every=1 at 25 steps
# (as `sdlib.builtin.evaluate.blue_effect` runs it: blue fraction 0.29 -> 0.55 on 8 held-out prompts)
# without washing them out; with loss_every=2 at 10-15 steps about 100 does the same. Larger scales
# trade the prompt for the loss. The scale means the same under every sampler
# (`schedule.loss_guidance_step`); SD v1 at 512 px needs a few hundred (fast.ai's deep dive: 200).
DEFAULT_BLUE_SCALE = 30.0


def _check(images):
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise SDLibError(f"images: a guidance loss takes a tensor (B, 3, H, W) in [0, 1], got {got}.")
    return images


def blue_loss(images):
    """How far the blue channel is from 0.9, on average: small when every pixel is very blue.
    (The loss from the fast.ai Stable Diffusion deep dive.)"""
    return (_check(images)[:, 2] - 0.9).abs().mean()


def _rgb(colour):
    """A colour name (any of matplotlib's: "purple", "tab:blue", "#ff8800") or three numbers
    (0..1, or 0..255 if any is > 1) -> (3,) float tensor in [0, 1]."""
    if isinstance(colour, str):
        from matplotlib.colors import is_color_like, to_rgb

        if not is_color_like(colour):
            raise SDLibError(f"unknown colour {colour!r}; use a name like 'purple' or 'tab:blue', "
                             "a hex code like '#ff8800', or three RGB numbers.")
        colour = to_rgb(colour)
    rgb = torch.as_tensor(colour, dtype=torch.float32).flatten()
    if rgb.numel() != 3 or rgb.min() < 0 or rgb.max() > 255:
        raise SDLibError(f"a colour is three numbers in 0..1 (or 0..255), got {colour!r}.")
    return rgb / 255 if rgb.max() > 1 else rgb


def colour_loss(images, colour):
    """Mean distance of every pixel from a target colour (a name or RGB): pulls the whole image
    towards it. blue_loss is the blue-channel-only cousin of this."""
    target = _rgb(colour).to(images.device, images.dtype)[None, :, None, None]  # (1, 3, 1, 1)
    return (_check(images) - target).abs().mean()


def brightness_loss(images, target=0.5):
    """Distance of the mean grey level of each pixel from `target` (0 black, 1 white)."""
    target = check_number("target", target, lo=0, hi=1)
    return (_check(images).mean(1) - target).abs().mean()


def dark_left_loss(images):
    """Mean brightness of the left half: minimising it keeps the left half dark, whatever the
    right half does (a loss can look at any part of the picture)."""
    images = _check(images)
    return images[..., : images.shape[-1] // 2].mean()


def blue_fraction(images, margin=0.05):
    """Per image, the fraction of pixels whose blue channel beats both red and green by `margin`:
    a measure of "how blue" that does not reward plain white. Returns a tensor (B,)."""
    margin = check_number("margin", margin, lo=0, hi=1)
    x = to_tensor(images)  # (B, 3, H, W) in [0, 1]
    r, g, b = x.detach().float().unbind(1)
    return ((b > r + margin) & (b > g + margin)).float().mean((1, 2))


def sweep(sd, prompt, name, values, seed=0, **generate_kwargs):
    """One picture per value of one `generate` setting (e.g. "guidance_scale", "loss_scale",
    "negative_prompt", or "seed" itself), all from the same seed: a list of PIL images."""
    settings = [p for p in inspect.signature(generate).parameters if p not in ("sd", "prompt")]
    if name not in settings:
        raise SDLibError(f"name must be a setting of sdlib.generate ({', '.join(settings)}), "
                         f"got {name!r}.")
    if name in generate_kwargs:
        raise SDLibError(f"{name!r} is the swept setting; do not also pass it as a fixed one.")
    if not isinstance(values, (list, tuple, range)) or len(values) == 0:
        raise SDLibError(f"values must be a non-empty list of {name} values, got {values!r}.")
    kwargs = dict(generate_kwargs, seed=seed)
    return [generate(sd, prompt, **{**kwargs, name: v}) for v in values]


def cfg_sweep(sd, prompt, scales=(0, 1, 2, 4, 7.5, 12), **generate_kwargs):
    """The same seed at several classifier-free guidance scales (0: uncond only, 1: text only)."""
    return sweep(sd, prompt, "guidance_scale", scales, **generate_kwargs)
