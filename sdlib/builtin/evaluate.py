"""Measuring the built-in model (or any SD model on these scenes): what it does, in numbers.

    python -m sdlib.builtin.evaluate                 # the default model, full evaluation, prints a table
    python -m sdlib.builtin.evaluate --n 24 --card   # and rewrites the model card's figures

- VAE: reconstruction PSNR on held-out scenes and on a real photo (scikit-image's astronaut);
- prompt adherence on held-out colour+shape pairs, judged by `sdlib.builtin.checker` (no model inside),
  at CFG 7.5 and 1.0 with 25 steps;
- the "blue" guidance loss: mean blue fraction with and without it;
- seconds for one 25-step generation and the model's size.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from .. import guidance, metrics
from ..images import load_image, to_tensor
from ..latents import decode, encode
from ..load import load_sd, n_params
from ..sampler import generate
from ..schedule import make_scheduler
from . import checker, model, scenes


def vae_psnr(sd, n=64, seed=1):
    """Mean PSNR (dB) of encode -> decode on n held-out scenes."""
    imgs, _, _ = scenes.make_batch(n, seed, size=sd.image_size, split="heldout")
    x = to_tensor(list(imgs))
    with torch.no_grad():
        out = torch.cat([decode(sd, encode(sd, x[i:i + 16])) for i in range(0, n, 16)])
    return float(np.mean(np.atleast_1d(np.asarray(metrics.psnr(out, x)))))


def photo_psnr(sd):
    """PSNR of the VAE round trip on a real photo, which the built-in VAE never saw."""
    from skimage import data

    img = load_image(data.astronaut(), size=sd.image_size)
    return float(metrics.psnr(decode(sd, encode(sd, img)), img))


def adherence(sd, guidance_scale, n=48, seed=0, num_steps=25, batch=16, scheduler=None):
    """Colour and shape accuracy of images generated from n held-out prompts (the model's own
    scheduler unless one is given)."""
    items = scenes.eval_prompts(n, seed)
    images = []
    for k in range(0, n, batch):
        prompts = [p for p, _ in items[k:k + batch]]
        images += generate(sd, prompts, num_steps=num_steps, guidance_scale=guidance_scale,
                           seed=seed + k, scheduler=scheduler)
    return checker.adherence(images, [s for _, s in items])


def adherence_by_scale(sd, scales=(0, 1, 2, 4, 7.5, 12), n_prompts=12, seed=0, num_steps=10,
                       batch_size=16):
    """Prompt adherence at each guidance scale, scored as `adherence` scores one.

    Prompts are `sdlib.builtin.scenes.eval_prompts(n_prompts, seed)`: held-out colour+shape pairs, judged
    by `sdlib.builtin.checker` (no model involved). Every scale sees the same prompts and the same
    starting noise. Returns {scale: {"colour_acc", "shape_acc", "both_acc", "n"}}.
    """
    return {scale: adherence(sd, scale, n=n_prompts, seed=seed, num_steps=num_steps,
                                      batch=batch_size) for scale in scales}


def blue_effect(sd, n=8, scale=None, seed=0):
    """Mean blue fraction of n generations without and with the blue guidance loss."""
    prompts = [p for p, _ in scenes.eval_prompts(n, seed)]
    kw = dict(num_steps=25, guidance_scale=7.5, seed=seed, output="tensor")
    plain = generate(sd, prompts, **kw)
    guided = generate(sd, prompts, loss_fn=guidance.blue_loss,
                      loss_scale=scale or guidance.DEFAULT_BLUE_SCALE, loss_every=1, **kw)
    return float(guidance.blue_fraction(plain).mean()), float(guidance.blue_fraction(guided).mean())


def seconds_per_image(sd, repeats=5):
    generate(sd, "a red circle", num_steps=25)  # warm-up
    start = time.perf_counter()
    for i in range(repeats):
        generate(sd, "a red circle", num_steps=25, seed=i)
    return (time.perf_counter() - start) / repeats


def model_megabytes(folder):
    return sum(p.stat().st_size for p in Path(folder).rglob("*.safetensors")) / 1e6


def evaluate(sd, n=48, folder=None, scheduler=None):
    """All figures as a dict (see the module doc)."""
    res = {"vae_psnr_scenes_db": vae_psnr(sd), "vae_psnr_photo_db": photo_psnr(sd)}
    for gs in (7.5, 1.0):
        a = adherence(sd, gs, n=n, scheduler=scheduler)
        res[f"cfg{gs}_colour_acc"], res[f"cfg{gs}_shape_acc"] = a["colour_acc"], a["shape_acc"]
    res["blue_fraction_plain"], res["blue_fraction_guided"] = blue_effect(sd)
    res["seconds_per_25_step_image"] = seconds_per_image(sd)
    res["params_million"] = sum(n_params(m) for m in (sd.unet, sd.vae, sd.text_encoder)) / 1e6
    if folder is not None:
        res["size_mb"] = model_megabytes(folder)
    return res


CARD = """# sdlib built-in model

A small Stable Diffusion with SD v1's classes (AutoencoderKL, CLIPTextModel with the real CLIP
tokenizer, UNet2DConditionModel with cross-attention, SD's scheduler config run by {scheduler}), trained by the
course itself on procedural scenes (`sdlib.builtin.scenes`: coloured circles, squares, triangles, stars,
crosses and diamonds on plain, striped, checked or gradient backgrounds). It loads like any SD
folder: `sdlib.load_sd("builtin")`, or `StableDiffusionPipeline.from_pretrained(<this folder>)`.

Images are {size} px; latents {latent} (4 channels, 48x fewer numbers than pixels).
Held-out colour+shape pairs (never seen in training): {held_out}.

## Figures
Measured by `python -m sdlib.builtin.evaluate --n {n}` on a 2-core CPU:

| measure | value |
|---|---|
{rows}

Colour/shape accuracy is judged by `sdlib.builtin.checker` (pixel statistics and shape templates; 100% on
ground-truth renders), on held-out prompts only, 25 {scheduler} steps.

## Recipe
{recipe}
"""


def write_card(folder, res, n, recipe):
    """The model card (README.md in the model folder) with these figures and the recipe."""
    rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in res.items())
    held = ", ".join(f"{c} {s}" for c, s in scenes.HELD_OUT)
    size = model.IMAGE_SIZE
    sched = json.loads((Path(folder) / "scheduler" / "scheduler_config.json").read_text())
    text = CARD.format(size=size, latent=f"{size // 8}x{size // 8}", held_out=held, n=n, rows=rows,
                       recipe=recipe, scheduler=sched["_class_name"])
    (Path(folder) / "README.md").write_text(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--n", type=int, default=48, help="held-out prompts per guidance scale")
    ap.add_argument("--scheduler", default=None, help="adherence with this scheduler (e.g. pndm)"
                    " instead of the model's own")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--card", default=None, help="write the model card here with the recipe from"
                    " this file (e.g. --card runs/recipe.md)")
    args = ap.parse_args(argv)
    sd = load_sd(args.model, device="cpu")
    folder = model.builtin_path() if args.model == "builtin" else Path(args.model)
    scheduler = make_scheduler(args.scheduler, sd.scheduler) if args.scheduler else None
    res = evaluate(sd, n=args.n, folder=folder if Path(folder).exists() else None,
                   scheduler=scheduler)
    for k, v in res.items():
        print(f"{k:28s} {v:.4g}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    if args.card:
        write_card(folder, res, args.n, Path(args.card).read_text())


if __name__ == "__main__":
    main()
