"""Measuring the built-in model (or any SD model on these scenes): what it does, in numbers.

    python -m sdlib.builtin.evaluate                 # the default model, full evaluation, prints a table
    python -m sdlib.builtin.evaluate --n 24 --card runs/recipe.md  # and rewrites the model card
    python -m sdlib.builtin.evaluate --model runs/ckpt --rows side,corner --scales 7.5  # cheap

Rows (`--rows`, names in `ROWS`; every prompt row at CFG 7.5 and 1.0, 25 steps, on held-out
colour+shape pairs, judged by the model-free `sdlib.builtin.checker`):
- colour, shape: accuracy on `scenes.eval_prompts` ("a purple triangle");
- side, corner: the object's centre in the named third(s) ("... on the left", "... in the top
  left corner"; `eval_sets.side_prompts`, `corner_prompts`; `checker.position_ok`);
- size: "a small X" and "a large X" from the same seed, large area > 2x small (`checker.size_ok`);
- two_object: "a red circle on the left and a blue square on the right": both colours, each in
  its half (`eval_sets.two_object_prompts`, `checker.two_objects_ok`);
- vae, photo: VAE reconstruction PSNR on held-out scenes and on a real photo (scikit-image's
  astronaut); blue: the "blue" guidance loss's effect; speed: seconds for one 25-step image;
  params, folder: the model's size.
The goals of the 128 px retraining are in `GOALS`; the model card shows them beside the values.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..sampling import guidance
from ..measure import metrics
from ..checks import check_choice, check_int
from ..images import to_tensor
from ..models.vae import decode, encode
from ..models.load import load_sd, n_params
from ..sampling.sampler import generate
from ..sampling.schedulers import make_scheduler
from . import checker, eval_sets, model, photos, scenes

ROWS = ("vae", "photo", "colour", "shape", "side", "corner", "size", "two_object", "blue", "speed",
        "params", "folder")
PROMPT_ROWS = ("side", "corner", "size", "two_object")  # scored by `row_accuracy`
SCALES = (7.5, 1.0)  # guidance scales of every prompt row: the model's default, and no guidance
# Goals of the 128 px retraining (held-out pairs, 25 steps, >= 48 prompts a row): minimum
# accuracies at CFG 7.5. At CFG 1.0 each row should be clearly lower (guidance is what helps).
GOALS = {"cfg7.5_colour_acc": 1.0, "cfg7.5_shape_acc": 0.95, "cfg7.5_side_acc": 0.90,
         "cfg7.5_corner_acc": 0.75, "cfg7.5_size_acc": 0.90, "cfg7.5_two_object_acc": 0.70,
         "vae_psnr_scenes_db": 32, "vae_psnr_photo_db": 20}
LIMITS = {"seconds_per_25_step_image": 2.0, "size_mb": 60}  # maxima: this 2-core CPU, the folder


def vae_psnr(sd, n=64, seed=1):
    """Mean PSNR (dB) of encode -> decode on n held-out scenes."""
    imgs, _, _ = scenes.make_batch(n, seed, size=sd.image_size, split="heldout")
    x = to_tensor(list(imgs))
    with torch.no_grad():
        out = torch.cat([decode(sd, encode(sd, x[i:i + 16])) for i in range(0, n, 16)])
    return float(np.mean(np.atleast_1d(np.asarray(metrics.psnr(out, x)))))


def photo_psnr(sd):
    """PSNR of the VAE round trip on a real photo, which the built-in VAE never saw."""
    img = photos.held_out_photo(sd.image_size)
    return float(metrics.psnr(decode(sd, encode(sd, img)), img))


def generate_batched(sd, prompts, guidance_scale, seed=0, num_steps=25, batch=16, scheduler=None):
    """PIL images for a list of prompts, `batch` at a time; the batch starting at item k uses
    seed + k, so two prompt lists of one length get the same starting noise item by item (the
    size row's "a small X" / "a large X" pairs rely on it)."""
    images = []
    for k in range(0, len(prompts), batch):
        images += generate(sd, list(prompts[k:k + batch]), num_steps=num_steps,
                           guidance_scale=guidance_scale, seed=seed + k, scheduler=scheduler)
    return images


def adherence(sd, guidance_scale, n=48, seed=0, num_steps=25, batch=16, scheduler=None):
    """Colour and shape accuracy of images generated from n held-out prompts (the model's own
    scheduler unless one is given)."""
    items = scenes.eval_prompts(n, seed)
    images = generate_batched(sd, [p for p, _ in items], guidance_scale, seed, num_steps, batch,
                              scheduler)
    return checker.adherence(images, [s for _, s in items])


def row_accuracy(sd, row, guidance_scale, n=48, seed=0, num_steps=25, batch=16, scheduler=None):
    """One prompt-following row ("side", "corner", "size", "two_object") at one guidance scale:
    n prompts from `eval_sets`, generated, scored by `checker`. For "size", n pairs (2n images).
    Returns the checker's {"acc", "n", "ok"}."""
    row = check_choice("row", row, PROMPT_ROWS)
    run = dict(guidance_scale=guidance_scale, seed=seed, num_steps=num_steps, batch=batch,
               scheduler=scheduler)
    if row == "size":
        pairs = eval_sets.size_pairs(n, seed)  # ((small prompt, scene), (large prompt, scene))
        small = generate_batched(sd, [p for (p, _), _ in pairs], **run)
        large = generate_batched(sd, [p for _, (p, _) in pairs], **run)  # same seeds: same noise
        return checker.size_ok(list(zip(small, large)), [(a, b) for (_, a), (_, b) in pairs])
    make, score = {"side": (eval_sets.side_prompts, checker.position_ok),
                   "corner": (eval_sets.corner_prompts, checker.position_ok),
                   "two_object": (eval_sets.two_object_prompts, checker.two_objects_ok)}[row]
    items = make(n, seed)
    images = generate_batched(sd, [p for p, _ in items], **run)
    return score(images, [s for _, s in items])


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


def seconds_per_image(sd, repeats=5, num_steps=25, guidance_scale=7.5):
    """Wall-clock seconds of one picture from `generate`, the mean of `repeats` after a warm-up."""
    generate(sd, "a red circle", num_steps=num_steps, guidance_scale=guidance_scale)  # warm-up
    start = time.perf_counter()
    for i in range(repeats):
        generate(sd, "a red circle", num_steps=num_steps, guidance_scale=guidance_scale, seed=i)
    return (time.perf_counter() - start) / repeats


def model_megabytes(folder):
    return sum(p.stat().st_size for p in Path(folder).rglob("*.safetensors")) / 1e6


def _check_rows(rows):
    rows = (rows,) if isinstance(rows, str) else tuple(rows)
    for row in rows:
        check_choice("rows", row, ROWS)
    return rows


def evaluate(sd, n=48, folder=None, scheduler=None, rows=ROWS, scales=SCALES):
    """The figures of the asked-for `rows` (see the module doc) as a dict: the prompt rows as
    f"cfg{scale}_{row}_acc" for each guidance scale, n prompts (size: n pairs) each."""
    rows = _check_rows(rows)
    n = check_int("n", n, lo=1)
    res = {}
    if "vae" in rows:
        res["vae_psnr_scenes_db"] = vae_psnr(sd)
    if "photo" in rows:
        res["vae_psnr_photo_db"] = photo_psnr(sd)
    for gs in map(float, scales):
        if "colour" in rows or "shape" in rows:
            a = adherence(sd, gs, n=n, scheduler=scheduler)
            res.update({f"cfg{gs}_{k}_acc": a[f"{k}_acc"] for k in ("colour", "shape") if k in rows})
        for row in PROMPT_ROWS:
            if row in rows:
                res[f"cfg{gs}_{row}_acc"] = row_accuracy(sd, row, gs, n=n, scheduler=scheduler)["acc"]
    if "blue" in rows:
        res["blue_fraction_plain"], res["blue_fraction_guided"] = blue_effect(sd)
    if "speed" in rows:
        res["seconds_per_25_step_image"] = seconds_per_image(sd)
    if "params" in rows:
        res["params_million"] = sum(n_params(m) for m in (sd.unet, sd.vae, sd.text_encoder)) / 1e6
    if "folder" in rows and folder is not None:
        res["size_mb"] = model_megabytes(folder)
    return res


def goal_text(key):
    """The goal of one figure as the card shows it: ">= 95 %", "clearly below CFG 7.5", or ""."""
    if key in LIMITS:
        return f"<= {LIMITS[key]:g}"
    if key in GOALS and not key.endswith("_acc"):
        return f">= {GOALS[key]:g}"
    if key in GOALS:
        return f">= {GOALS[key]:.0%}".replace("%", " %") if GOALS[key] < 1 else "100 %"
    scale, _, rest = key.partition("_")
    if scale.startswith("cfg") and scale != "cfg7.5" and f"cfg7.5_{rest}" in GOALS:
        return "clearly below CFG 7.5"
    return ""


def goals_met(res):
    """{key: met} for every figure in `res` that has a minimum in GOALS or a maximum in LIMITS."""
    return {**{k: res[k] >= g for k, g in GOALS.items() if k in res},
            **{k: res[k] <= g for k, g in LIMITS.items() if k in res}}


def _value_text(key, value):
    return f"{value:.1%}".replace("%", " %") if key.endswith("_acc") else f"{value:.4g}"


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

| measure | value | goal |
|---|---|---|
{rows}

Every accuracy is judged by `sdlib.builtin.checker` (pixel statistics and shape templates; 100% on
ground-truth renders), on held-out colour+shape pairs only, 25 {scheduler} steps, at guidance
(CFG) 7.5 and 1.0: colour, shape; side ("on the left": the object's centre in the left third);
corner ("in the top left corner": in both named thirds); size ("a small X" vs "a large X" from one
seed: large area > 2x small); two_object ("a red circle on the left and a blue square on the
right": both colours drawn, each in its half).

## Recipe
{recipe}
"""


def write_card(folder, res, n, recipe):
    """The model card (README.md in the model folder) with these figures and the recipe."""
    rows = "\n".join(f"| {k} | {_value_text(k, v)} | {goal_text(k)} |" for k, v in res.items())
    held = ", ".join(f"{c} {s}" for c, s in scenes.HELD_OUT)
    size = model.IMAGE_SIZE
    sched = json.loads((Path(folder) / "scheduler" / "scheduler_config.json").read_text())
    text = CARD.format(size=size, latent=f"{size // 8}x{size // 8}", held_out=held, n=n, rows=rows,
                       recipe=recipe, scheduler=sched["_class_name"])
    (Path(folder) / "README.md").write_text(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--n", type=int, default=48, help="held-out prompts per row and guidance "
                    "scale (size: pairs)")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated subset of "
                    f"{','.join(ROWS)} (e.g. side,corner to score a checkpoint cheaply)")
    ap.add_argument("--scales", default=",".join(map(str, SCALES)),
                    help="comma-separated guidance scales of the prompt rows")
    ap.add_argument("--scheduler", default=None, help="adherence with this scheduler (e.g. pndm)"
                    " instead of the model's own")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--card", default=None, help="write the model card here with the recipe from"
                    " this file (e.g. --card runs/recipe.md)")
    args = ap.parse_args(argv)
    rows = _check_rows([r.strip() for r in args.rows.split(",") if r.strip()])  # before loading
    scales = [float(x) for x in args.scales.split(",") if x.strip()]
    sd = load_sd(args.model, device="cpu")
    folder = model.builtin_path() if args.model == "builtin" else Path(args.model)
    scheduler = make_scheduler(args.scheduler, sd.scheduler) if args.scheduler else None
    res = evaluate(sd, n=args.n, folder=folder if Path(folder).exists() else None,
                   scheduler=scheduler, rows=rows, scales=scales)
    for k, v in res.items():
        print(f"{k:28s} {_value_text(k, v):>10s}   {goal_text(k)}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    if args.card:
        write_card(folder, res, args.n, Path(args.card).read_text())


if __name__ == "__main__":
    main()
