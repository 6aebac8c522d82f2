"""Looking into the VAE's latents: a test chart of fine detail, and a channel explorer.

Why: the four latent channels are not R, G, B and alpha; the quickest way to learn what each one
carries is to scale, flip or zero it and decode. `channel_view` draws one such edit (and is what
the tests call); `channel_explorer` puts sliders on it. `detail_chart` draws the things an 8x
downsampling VAE struggles with (small text, one-pixel lines) next to things it handles (smooth
gradients, flat shapes), with no font or image download. Taught in notebooks/01.
"""
import numbers

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from . import plot
from ..checks import check_int, check_number, shape_or_type
from ..errors import SDLibError
from ..images import load_image
from ..models.vae import decode, edit_channel, encode
from ..models.load import check_sd
from ..measure.metrics import error_map

MIN_CHART = 32  # pixels: the smallest detail chart whose quadrants still hold text and lines


def _check_range(name, pair, start):
    """(low, high) slider limits: two numbers, low < high, around the slider's `start`."""
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2) or not \
            check_number(f"{name}[0]", pair[0]) <= start <= check_number(f"{name}[1]", pair[1]) \
            or pair[0] == pair[1]:
        raise SDLibError(f"{name} must be (low, high) with low <= {start:g} <= high and low < high "
                         f"(the slider starts at {start:g}: no change), got {pair!r}.")
    return float(pair[0]), float(pair[1])


def detail_chart(size):
    """(RGB PIL image size x size, {region: (left, top, right, bottom)}): four quadrants.

    "smooth gradient" and "flat shape" are easy for the VAE; "small text" (a font a few pixels
    high, scaled with the image) and "fine lines" (one-pixel stripes and a checkerboard) are
    finer than one latent cell (8x8 pixels) and come back blurred or wrong.
    Taught in notebooks/01, section 7.
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < MIN_CHART or size % 2:
        raise SDLibError(f"size must be an even whole number, at least {MIN_CHART} pixels, got {size!r}.")
    h = size // 2
    yy, xx = np.mgrid[0:h, 0:h] / max(h - 1, 1)
    img = np.full((size, size, 3), 255, np.uint8)
    img[:h, :h] = (np.stack([0.9 - 0.6 * xx, 0.3 + 0.5 * yy, 0.3 + 0.6 * xx], -1) * 255).astype(np.uint8)
    img[:h, h:] = (250, 235, 200)
    stripes = (np.arange(h) % 2 == 0)[None, :].repeat(h // 2, 0)  # 1-px vertical stripes
    checks = (np.add.outer(np.arange(h - h // 2), np.arange(h)) % 2 == 0)  # 1-px checkerboard
    img[h:, h:] = np.concatenate([stripes, checks])[..., None] * 255
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    r = h * 0.35
    draw.ellipse((h + h / 2 - r, h / 2 - r, h + h / 2 + r, h / 2 + r), fill=(200, 40, 40))
    font = ImageFont.load_default(size=max(7, size // 40))
    line = max(7, size // 40) + 1
    words = ["Stable", "Diffusion", "VAE 1.4", "latent", "8x8 px", "abc 123", "xyz 789", "TEXT"]
    for k, y in enumerate(range(h + 1, size - line + 1, line)):
        draw.text((1, y), words[k % len(words)], fill=(0, 0, 0), font=font)
    boxes = {"smooth gradient": (0, 0, h, h), "flat shape": (h, 0, size, h),
             "small text": (0, h, h, size), "fine lines": (h, h, size, size)}
    return pil, boxes


def channel_view(sd, latents, channel, scale=1.0, shift=0.0, original=None, title=None):
    """Decode `latents` (1, 4, h, w) with one channel edited; return (figure, edited, image).

    The figure shows the original (if given), the plain reconstruction, the edited decode, how
    much the picture changed, and the channel before/after on one colour scale.
    Used by channel_explorer; taught in notebooks/01, section 8.
    """
    check_sd(sd)
    n_channels = sd.vae.config.latent_channels
    if not isinstance(latents, torch.Tensor) or latents.ndim != 4 or latents.shape[:2] != (1, n_channels):
        got = shape_or_type(latents)
        raise SDLibError(f"latents must be one latent tensor (1, {n_channels}, h, w) from sdlib.encode, "
                         f"got {got}.")
    channel = check_int("channel", channel, lo=0, hi=n_channels - 1)
    scale, shift = check_number("scale", scale), check_number("shift", shift)
    if title is not None and not isinstance(title, str):
        raise SDLibError(f"title must be a string or None, got {type(title).__name__}.")
    edited = edit_channel(latents, channel, scale, shift)  # (1, 4, h, w)
    both = decode(sd, torch.cat([latents, edited]))  # (2, 3, H, W): one decoder call
    plain, image = both[:1].float().cpu(), both[1:].float().cpu()  # (1, 3, H, W) each
    before, after = latents[0, channel].float().cpu(), edited[0, channel].float().cpu()  # (h, w)
    lim = float(max(before.abs().max(), after.abs().max(), 1e-6))
    size = (plain.shape[-1], plain.shape[-2])  # (width, height)
    panels = [("original", load_image(original, size=size, name="original"))] if original is not None else []
    panels += [("decoded", plain[0]), (f"channel {channel} x{scale:g} {shift:+g}", image[0])]
    change = error_map(plain, image, gain=4)[0]  # (H, W) in [0, 1]
    n = len(panels) + 3
    fig, axes = plt.subplots(1, n, figsize=(n * plot.CELL, plot.CELL + 0.4), dpi=plot.DPI)
    for ax, (name, img) in zip(axes, panels):
        plot.draw_image(ax, img, name)
    plot.draw_image(axes[len(panels)], change, "change (x4)", cmap="magma", vmin=0, vmax=1)
    for ax, (name, z) in zip(axes[-2:], (("before", before), ("after", after))):
        plot.draw_image(ax, z, f"channel {channel} {name}\n[{z.min():.2f}, {z.max():.2f}]",
                        cmap="RdBu_r", vmin=-lim, vmax=lim)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig, edited, image


def channel_explorer(sd, images, scale_range=(-3.0, 3.0), shift_range=(-3.0, 3.0)):
    """A widget: pick an image and a latent channel, scale or shift (or zero) it, see the decode.

    images: {name: image} or a list of images (PIL/arrays), resized to `sd.image_size`.
    Each image is encoded once, up front; every slider move decodes once.
    Taught in notebooks/01, section 8.
    """
    import ipywidgets as W
    from IPython.display import display

    check_sd(sd)
    if isinstance(images, (list, tuple)):
        images = {f"image {k}": im for k, im in enumerate(images)}
    if not isinstance(images, dict) or not images:
        got = "an empty one" if isinstance(images, dict) else type(images).__name__
        raise SDLibError(f"images must be a non-empty dict {{name: image}} or list of images; "
                         f"channel_explorer needs at least one image, got {got}.")
    scale_range = _check_range("scale_range", scale_range, start=1.0)
    shift_range = _check_range("shift_range", shift_range, start=0.0)
    pics = {name: load_image(im, size=sd.image_size, name=f"images[{name!r}]")
            for name, im in images.items()}
    latents = {name: encode(sd, pic) for name, pic in pics.items()}  # each (1, 4, h, w)
    n_channels = sd.vae.config.latent_channels

    def update(image, channel, scale, shift):
        fig, _, _ = channel_view(sd, latents[image], channel, scale, shift, original=pics[image])
        display(fig)
        plt.close(fig)

    slider = dict(step=0.1, continuous_update=False, readout_format=".1f")
    return W.interactive(
        update,
        image=W.Dropdown(options=list(pics), description="image"),
        channel=W.Dropdown(options=list(range(n_channels)), value=0, description="channel"),
        scale=W.FloatSlider(value=1.0, min=scale_range[0], max=scale_range[1], description="scale", **slider),
        shift=W.FloatSlider(value=0.0, min=shift_range[0], max=shift_range[1], description="shift", **slider))
