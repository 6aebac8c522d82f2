"""Measuring a ControlNet on held-out control maps: does the picture's object cover the map's?

    python -m sdlib.builtin.evaluate_control --controlnet sdlib/models/builtin-controlnet-mask --n 24
    python -m sdlib.builtin.evaluate_control --depth sdlib/models/builtin-depth --n 24

For n held-out control scenes (sizes and places training never drew: `control_maps.HELD_OUT_*`),
each caption ("a red circle") is drawn from one seed with the ControlNet at every scale in
--scales (scale 0 is the UNet alone: no control), and the largest object the model-free judge finds
(`checker.object_mask`) is compared with the map's object: IoU (`metrics.iou`); the judge's colour
and shape against the caption's tell whether the text is still followed. `conflict` gives each
caption the map of another shape ("a red circle" over a square's mask) and counts which one the
picture follows. `--depth` measures a depth UNet the same way (the map as its fifth channel; no
scale). Printed in notebooks/09 and the model cards (`training/controlnet-mask.md`,
`training/depth-builtin.md`).
"""
import argparse
import dataclasses
import json

import numpy as np

from ..checks import check_int
from ..measure.metrics import iou
from ..sampling.sampler import generate
from . import checker, control_maps
from .scenes import SHAPES, TRAIN_PAIRS

SCALES = (0.0, 0.5, 1.0, 1.5)


def heldout_set(n, seed=0, size=128, kind="mask"):
    """(captions, scenes, control images (n, 3, size, size)) of n held-out control scenes."""
    _, captions, scenes, maps = control_maps.make_control_batch(check_int("n", n, lo=1), seed, size, "heldout", kind)
    return captions, scenes, maps


def _generate(sd, captions, maps, scale, seed, num_steps, guidance_scale, batch):
    from ..conditioning.channels import extra_channels

    depth, control = extra_channels(sd) == 1, sd.controlnet is not None  # a depth model: the map beside the latents
    images = []
    for k in range(0, len(captions), batch):
        kw = (dict(depth_map=maps[k:k + batch, 0]) if depth else
              dict(control_image=maps[k:k + batch], conditioning_scale=scale) if control else {})
        images += generate(sd, captions[k:k + batch], num_steps=num_steps, guidance_scale=guidance_scale,
                           seed=seed + k, output="tensor", **kw).unbind(0)
    return images  # each (3, H, W) in [0, 1]


def adherence(sd, captions, scenes, maps, scale, seed=0, num_steps=25, guidance_scale=7.5, batch=8):
    """{iou: the mean IoU of the judged object and the map's object, colour, shape: the shares of
    pictures whose judged colour / shape is the caption's, ious: each picture's IoU, images}.
    `sd` without a ControlNet, or scale 0: the UNet alone; a depth model (`channels.load_depth_model`):
    the map as its fifth channel (scale unused)."""
    images = _generate(sd, captions, maps, scale, seed, num_steps, guidance_scale, batch)
    verdicts = [checker.judge(im) for im in images]
    ious = [iou(checker.object_mask(im), m[0]) for im, m in zip(images, maps)]
    return dict(iou=float(np.mean(ious)), ious=ious, images=images,
                colour=float(np.mean([v["colour"] == s.main.colour for v, s in zip(verdicts, scenes)])),
                shape=float(np.mean([v["shape"] == s.main.shape for v, s in zip(verdicts, scenes)])))


def conflict(sd, scenes, scale, seed=0, num_steps=25, guidance_scale=7.5, batch=8, size=128, kind="mask"):
    """Each held-out scene's map kept, its caption's shape replaced by the next shape that the
    colour was trained with ("a red circle" over a square's map). {map: share of pictures whose judged shape
    is the map's, prompt: share that drew the caption's shape, captions, images}."""
    def next_shape(colour, shape):
        turn = SHAPES[SHAPES.index(shape) + 1:] + SHAPES[:SHAPES.index(shape)]
        return next(o for o in turn if (colour, o) in TRAIN_PAIRS)

    other = [next_shape(s.main.colour, s.main.shape) for s in scenes]
    captions = [control_maps.control_caption(dataclasses.replace(
        s, objects=(dataclasses.replace(s.main, shape=o),))) for s, o in zip(scenes, other)]
    maps = control_maps.control_images(scenes, size, kind)
    images = _generate(sd, captions, maps, scale, seed, num_steps, guidance_scale, batch)
    judged = [checker.judge(im)["shape"] for im in images]
    return dict(map=float(np.mean([j == s.main.shape for j, s in zip(judged, scenes)])),
                prompt=float(np.mean([j == o for j, o in zip(judged, other)])), captions=captions, images=images)


def main(argv=None):
    import torch
    from diffusers import UNet2DConditionModel

    from ..conditioning.control import load_controlnet
    from ..models.load import load_sd

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--controlnet", default=None, help="a ControlNet folder (default: the model's)")
    ap.add_argument("--depth", default=None, help="measure this depth UNet folder instead (the map as a fifth channel)")
    ap.add_argument("--n", type=int, default=24, help="held-out control maps")
    ap.add_argument("--scales", default=",".join(map(str, SCALES)))
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the numbers here too")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sd = load_sd(args.model, device="cpu")
    if args.depth:
        unet = UNet2DConditionModel.from_pretrained(args.depth, torch_dtype=torch.float32, use_safetensors=True)
        sd, args.scales = dataclasses.replace(sd, unet=unet.eval()), "1"
    else:
        sd = load_controlnet(sd, args.controlnet)
    captions, scenes, maps = heldout_set(args.n)
    rows = {}
    for scale in map(float, args.scales.split(",")):
        r = adherence(sd, captions, scenes, maps, scale, num_steps=args.steps)
        rows[f"scale {scale:g}"] = {k: round(r[k], 3) for k in ("iou", "colour", "shape")}
        print(f"scale {scale:<4g} IoU {r['iou']:.3f}  colour {r['colour']:.0%}  shape {r['shape']:.0%}", flush=True)
    c = conflict(sd, scenes, 1.0, num_steps=args.steps)
    rows["conflict at scale 1"] = {"map": round(c["map"], 3), "prompt": round(c["prompt"], 3)}
    print(f"map vs prompt at scale 1: the map's shape {c['map']:.0%}, the prompt's {c['prompt']:.0%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
