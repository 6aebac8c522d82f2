"""One family of matplotlib helpers: image grids, latent channels, curves, and `save_fig`.

Every figure in the course comes from here, so sizes and styles match across notebooks.
`CELL` is the width of one image in inches; figures are at most `MAX_WIDTH` inches wide.
"""
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from .images import to_pil

CELL = 1.8
MAX_WIDTH = 12.0
DPI = 72  # small images stay small in notebooks; save_fig writes at 100
FIGURES = Path(__file__).resolve().parent.parent / "figures"


def _as_array(img):
    if isinstance(img, torch.Tensor):
        img = to_pil(img)[0] if img.ndim >= 3 and img.shape[-3] == 3 else img.detach().cpu().float().numpy()
    return np.asarray(img)


def show_images(images, titles=None, ncols=None, title=None, cell=CELL, cmap=None):
    """A grid of images (PIL, arrays, or (3, H, W) tensors in [0, 1]) with optional titles."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        images = list(images)
    images = list(images)
    n = len(images)
    ncols = min(ncols or n, n, int(MAX_WIDTH // cell))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * cell, nrows * cell + (0.3 if title else 0)),
                             squeeze=False, dpi=DPI)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(_as_array(images[k]), cmap=cmap, interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[k]), fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def show_latents(latents, title=None, cell=CELL):
    """The channels of one latent (4, h, w) or (1, 4, h, w) side by side, each with its own scale."""
    z = latents.detach().cpu().float()
    z = z[0] if z.ndim == 4 else z
    titles = [f"channel {c}\n[{z[c].min():.2f}, {z[c].max():.2f}]" for c in range(z.shape[0])]
    return show_images([z[c].numpy() for c in range(z.shape[0])], titles, title=title, cell=cell,
                       cmap="RdBu_r")


def plot_curves(x, curves, xlabel="", ylabel="", title=None, logy=False, width=6.0, height=3.0):
    """Line plot of named curves: `curves` maps a label to y values over x."""
    fig, ax = plt.subplots(figsize=(width, height), dpi=DPI)
    for label, y in curves.items():
        ax.plot(np.asarray(x), np.asarray(y), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title, fontsize=10)
    if len(curves) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save_fig(fig, name, folder=None):
    """Save `fig` as figures/<name>.png (the one place figures are written) and return the path."""
    folder = Path(folder) if folder else FIGURES
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path
