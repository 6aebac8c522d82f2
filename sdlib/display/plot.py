"""One family of matplotlib helpers: image grids, latent channels, curves, bars, and `save_fig`.

Every figure in the course comes from here, so sizes and styles match across notebooks (first
used in notebooks/00; latent channels in notebooks/01). `CELL` is the width of one image in
inches; figures are at most `MAX_WIDTH` inches wide. Images are converted by `images.to_array`.
"""
import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from PIL import Image

from ..checks import check_int, check_number, shape_or_type
from ..errors import SDLibError
from ..images import to_array

CELL = 1.8
MAX_WIDTH = 12.0
DPI = 72  # small images stay small in notebooks; save_fig writes at 100
SAVE_DPI = 100
FIGURES = "figures"  # save_fig's folder under the working directory when none is given


def _image_list(images):
    """One image, a list of images, or a batch (B, 3, H, W) / (B, H, W, 3) -> list of images."""
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        return list(images)
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, (torch.Tensor, np.ndarray, Image.Image, str)) or hasattr(images, "__fspath__"):
        return [images]
    raise SDLibError(f"images must be an image, a list of images or a batch tensor (B, 3, H, W), "
                     f"got {type(images).__name__}.")


def _check_text(name, value):
    if value is not None and not isinstance(value, str):
        raise SDLibError(f"{name} must be a string or None, got {type(value).__name__}.")
    return value


def _check_cmap(cmap):
    if cmap is None or isinstance(cmap, Colormap) or cmap in matplotlib.colormaps:
        return cmap
    raise SDLibError(f"cmap must be None or a matplotlib colour map name like 'gray', 'magma' or "
                     f"'RdBu_r', got {cmap!r}.")


def draw_image(ax, image, title=None, cmap=None, vmin=None, vmax=None):
    """Draw one image (anything `images.to_array` takes) on a matplotlib axis: pixels kept sharp,
    no ticks, a small title. The cell of every grid here, and of the explorers' own layouts
    (explore_latents.channel_view, explore_noise.strength_view); returns the AxesImage.

    cmap, vmin, vmax: for 2-D maps (a colour image ignores them).
    Used by show_images; pictures are drawn in every notebook from notebooks/00 on.
    """
    if not isinstance(ax, Axes):
        raise SDLibError(f"ax must be a matplotlib Axes (e.g. from plt.subplots), got {type(ax).__name__}.")
    array = to_array(image)  # (H, W, 3) uint8, or an (H, W) map
    cmap = _check_cmap(cmap)
    vmin, vmax = (None if v is None else check_number(name, v)
                  for name, v in (("vmin", vmin), ("vmax", vmax)))
    shown = ax.imshow(array, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.axis("off")
    if title is not None:
        ax.set_title(str(title), fontsize=8)
    return shown


def show_images(images, titles=None, ncols=None, title=None, cell=CELL, cmap=None):
    """A grid of images (PIL, arrays, or (3, H, W) tensors in [0, 1]) with optional titles.

    2-D arrays or tensors are maps, drawn with `cmap` on their own scale.
    Used in every notebook from notebooks/00, section 1 on."""
    images = _image_list(images)
    n = len(images)
    if n == 0:
        raise SDLibError("images must hold at least one image, got an empty list.")
    if titles is not None and (isinstance(titles, str) or not isinstance(titles, (list, tuple))
                               or len(titles) != n):
        raise SDLibError(f"titles must be None or a list of {n} titles, one per image, got "
                         f"{titles!r:.60}; for one heading over the grid use title=.")
    arrays = [to_array(im, name=f"images[{k}]") for k, im in enumerate(images)]
    cell = check_number("cell", cell, lo=0, hi=MAX_WIDTH, lo_open=True)
    ncols = min(n if ncols is None else check_int("ncols", ncols, lo=1), n, int(MAX_WIDTH // cell))
    _check_text("title", title)
    cmap = _check_cmap(cmap)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * cell, nrows * cell + (0.3 if title else 0)),
                             squeeze=False, dpi=DPI)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            draw_image(ax, arrays[k], None if titles is None else titles[k], cmap=cmap)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def show_latents(latents, title=None, cell=CELL):
    """The channels of one latent (4, h, w) or (1, 4, h, w) side by side (taught in notebook 01).

    Each channel has its own scale, centred on zero: red above zero, blue below, white at zero,
    from -max|z_c| to +max|z_c| (the explorer, explore_latents.channel_view, uses the same rule).
    Taught in notebooks/01, section 3."""
    if not isinstance(latents, torch.Tensor) or latents.ndim not in (3, 4) \
            or (latents.ndim == 4 and len(latents) != 1):
        got = shape_or_type(latents)
        hint = "; for a batch pick one, e.g. latents[0]" if getattr(latents, "ndim", 0) == 4 else ""
        raise SDLibError(f"latents must be one latent tensor (C, h, w) or (1, C, h, w), got {got}{hint}.")
    z = latents.detach().cpu().float()
    z = z[0] if z.ndim == 4 else z  # (C, h, w)
    titles = [f"channel {c}\n[{z[c].min():.2f}, {z[c].max():.2f}]" for c in range(z.shape[0])]
    fig = show_images([z[c].numpy() for c in range(z.shape[0])], titles, title=title, cell=cell,
                      cmap="RdBu_r")
    for c, ax in enumerate(ax for ax in fig.axes if ax.images):
        lim = max(float(z[c].abs().max()), 1e-8)  # symmetric limits: zero is white
        ax.images[0].set_clim(-lim, lim)
    return fig


def _values(name, values, n=None):
    """A 1-D sequence of numbers (list, array, tensor) -> float array, of length n if given."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 1 or (n is not None and len(arr) != n):
        shape = "" if n is None else f" of length {n} (one per x)"
        got = f"shape {arr.shape}" if arr is not None else f"{values!r:.60}"
        raise SDLibError(f"{name} must be a 1-D sequence of numbers{shape}, got {got}.")
    return arr


def plot_curves(x, curves, xlabel="", ylabel="", title=None, logy=False, width=6.0, height=3.0):
    """Line plot of named curves: `curves` maps a label to y values over x.
    Used in notebooks/04 to 08 (first in notebooks/04, section 4)."""
    x = _values("x", x)
    if not isinstance(curves, dict) or not curves:
        raise SDLibError(f"curves must be a non-empty dict {{label: y values}}, got {curves!r:.60}.")
    ys = {str(label): _values(f"curves[{label!r}]", y, len(x)) for label, y in curves.items()}
    for name, value in (("xlabel", xlabel), ("ylabel", ylabel), ("title", title)):
        _check_text(name, value)
    if not isinstance(logy, bool):
        raise SDLibError(f"logy must be True or False, got {logy!r}.")
    width = check_number("width", width, lo=0, hi=MAX_WIDTH, lo_open=True)
    height = check_number("height", height, lo=0, hi=MAX_WIDTH, lo_open=True)
    fig, ax = plt.subplots(figsize=(width, height), dpi=DPI)
    for label, y in ys.items():
        ax.plot(x, y, label=label)
    ax.set_ylabel(ylabel or "")
    if logy:
        ax.set_yscale("log")
    return _finish(fig, ax, xlabel, title, legend=len(ys) > 1)


def plot_bars(groups, xlabel="", title=None, width=6.0):
    """Horizontal bars, one row per label: `groups` maps a legend name to {label: value}, every
    group with the same labels (one group: no legend). Used for where the time goes (notebooks/08)."""
    if not isinstance(groups, dict) or not groups or not all(isinstance(g, dict) and g for g in groups.values()):
        raise SDLibError(f"groups must be a non-empty dict {{name: {{label: value}}}}, got {groups!r:.60}.")
    labels = list(next(iter(groups.values())))
    if any(list(g) != labels for g in groups.values()):
        raise SDLibError("groups must all have the same labels, in the same order.")
    values = {str(name): _values(f"groups[{name!r}]", list(g.values())) for name, g in groups.items()}
    for name, value in (("xlabel", xlabel), ("title", title)):
        _check_text(name, value)
    width = check_number("width", width, lo=0, hi=MAX_WIDTH, lo_open=True)
    fig, ax = plt.subplots(figsize=(width, 0.5 + 0.25 * len(labels) * len(values) ** 0.5), dpi=DPI)
    bar = 0.8 / len(values)
    y = np.arange(len(labels))
    for k, (name, vals) in enumerate(values.items()):
        ax.barh(y + (k - (len(values) - 1) / 2) * bar, vals, height=bar, label=name)
    ax.set_yticks(y, [str(label) for label in labels], fontsize=8)
    ax.invert_yaxis()  # the first label on top
    return _finish(fig, ax, xlabel, title, legend=len(values) > 1)


def _finish(fig, ax, xlabel, title, legend):
    """The x label, title and legend every chart here gets, in one style."""
    ax.set_xlabel(xlabel or "")
    if title:
        ax.set_title(title, fontsize=10)
    if legend:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_fig(fig, name, folder=None):
    """Save `fig` as <folder>/<name>.png and return the path (the one place figures are written).

    folder: where to write; by default `figures/` under the current working directory (so it
    works from an installed package too). tools/make_figures.py passes the repository's folder.
    Used by tools/make_figures.py for the figures of notebooks/00 to 08.
    """
    if not isinstance(fig, Figure):
        raise SDLibError(f"fig must be a matplotlib Figure (e.g. what sdlib.show_images returns), "
                         f"got {type(fig).__name__}.")
    if not isinstance(name, str) or not re.fullmatch(r"[\w.-]+", name) or name.endswith(".png"):
        raise SDLibError(f"name must be a file name without folder or .png, like 'prompts' "
                         f"(letters, digits, '_', '-', '.'), got {name!r}.")
    if folder is not None and not isinstance(folder, str) and not hasattr(folder, "__fspath__"):
        raise SDLibError(f"folder must be None, a string or a Path, got {type(folder).__name__}.")
    folder = Path.cwd() / FIGURES if folder is None else Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SDLibError(f"folder {str(folder)!r} is a file, not a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=SAVE_DPI, bbox_inches="tight")
    return path
