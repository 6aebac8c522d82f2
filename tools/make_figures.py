"""Regenerate figures/ (the README's pictures and the model card's), all through `sdlib.save_fig`.

    .venv/bin/python tools/make_figures.py        # built-in model on CPU, about a minute

Deterministic: same model, same seeds, same pixels. Each figure is written once and linked, never
embedded twice.
"""
import os
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import matplotlib.pyplot as plt  # noqa: E402

import sdlib  # noqa: E402

FOLDER = Path(__file__).resolve().parent.parent / "figures"  # the repository's figures/, wherever run from
PROMPTS = ["a large red circle on the left", "a small blue triangle at the top",
           "a purple triangle", "a yellow star on a checked background",
           "a big green square on a black background", "an orange diamond in the bottom right"]


def prompts_grid(sd):
    """What the model draws: six prompts, one seed, 25 steps, guidance 7.5."""
    images = sdlib.generate(sd, PROMPTS, seed=0, num_steps=25)
    return sdlib.show_images(images, [textwrap.fill(p, 20) for p in PROMPTS], ncols=6,
                             title="sdlib.generate, built-in model, seed 0")


def guidance_grid(sd):
    """The same prompt and seed at six guidance scales."""
    scales = [0, 1, 2, 4, 7.5, 12]
    images = sdlib.guidance.cfg_sweep(sd, "a purple triangle", scales, seed=0, num_steps=25)
    return sdlib.show_images(images, [f"guidance {s}" for s in scales],
                             title="'a purple triangle' (a held-out pair): guidance scales")


FIGURES = {"prompts": prompts_grid, "guidance": guidance_grid}


def main(names):
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        sys.exit(f"unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)}.")
    sd = sdlib.load_sd("builtin", device="cpu")
    for name in names or FIGURES:
        fig = FIGURES[name](sd)
        print(sdlib.save_fig(fig, name, folder=FOLDER))
        plt.close(fig)


if __name__ == "__main__":
    main(sys.argv[1:])
