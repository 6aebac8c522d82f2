"""Measuring the built-in SD3 in miniature beside the built-in flow UNet: the same scenes, the same
flow-matching objective, two backbones (notebooks/11, section 7; training/sd3-builtin.md).

    python -m sdlib.builtin.evaluate_sd3 --sd3 sdlib/models/builtin-sd3 --n 48 --threads 1 --out evaluation.json

Each model at its own pipeline's defaults (the MM-DiT: StableDiffusion3Pipeline's 28 steps and
guidance 7.0; the UNet: the course's 25 steps and 7.5), on the same held-out prompts and seeds: the
judge's colour and shape accuracy (`evaluate.adherence`), left/right placement ("side") and two
objects in one picture (`evaluate.row_accuracy`), seconds per picture on this machine, parameters
and FLOPs of one guided denoiser call.
"""
import argparse
import json
import time
from pathlib import Path

import torch

from ..errors import SDLibError
from ..measure import speed
from ..models.flow import FLOW_NAME
from ..models.load import load_sd, n_params
from ..models.sd3 import SD3_NAME

DEFAULTS = {FLOW_NAME: (25, 7.5), SD3_NAME: (28, 7.0)}  # (steps, guidance) each model is sampled with
ROWS = ("colour", "shape", "side", "two_object")
FLOORS = {SD3_NAME: {"colour": 0.9, "shape": 0.8}}  # what the shipped miniature must reach (issue 31), in its card
SIGMAS = (0.1, 0.3, 0.5, 0.7, 0.9)  # the noise levels of `loss_by_noise_level`


@torch.no_grad()
def loss_by_noise_level(sd, sigmas=SIGMAS, n=32, seed=123):
    """The flow-matching loss at fixed noise levels: on n training scenes (`scenes.make_batch(n, seed)`
    at the model's size, encoded by its VAE, each with its caption) and one fixed noise, for each sigma
    the mean of (model(x_t, t) - (noise - x0))^2 over every number, x_t = (1 - sigma) x0 + sigma noise,
    t = sigma * 1000: {sigma: loss}. The same scenes and noise for every flow model (the built-in flow
    UNet and the SD3 miniature share the VAE), so their rows compare where each one's error lies.
    training/sd3-builtin.md reads it."""
    from .. import processes
    from ..models.text import encode_text
    from ..models.vae import encode
    from ..sampling.guidance import guided_output
    from . import scenes

    if processes.kind(sd.scheduler) != "flow":
        raise SDLibError(f"sd must be a flow-matching model (builtin-flow, builtin-sd3), got {sd.name!r}.")
    images, captions, _ = scenes.make_batch(n, seed, size=sd.image_size, as_pil=True)
    x0 = encode(sd, images)  # (n, C, h, w)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(x0)
    emb = encode_text(sd, captions)
    out = {}
    for sigma in sigmas:
        t = torch.full((n,), float(sigma) * processes.num_train_timesteps(sd.scheduler), device=x0.device)
        x_t = processes.add_noise(sd.scheduler, x0, noise, t)  # (n, C, h, w)
        target = processes.training_target(sd.scheduler, x0, noise, t)  # noise - x0
        v = guided_output(sd, sd.scheduler, x_t, t, emb, 1.0)  # no guidance: what training fits
        out[float(sigma)] = float(((v.float() - target.float()) ** 2).mean())
    return out


def measure(sd, num_steps, guidance_scale, n=48, rows=ROWS):
    """{row: accuracy} on n held-out prompts per row, plus "seconds", "params_million", "gflop_per_call"."""
    from . import evaluate

    out = {}
    if "colour" in rows or "shape" in rows:
        res = evaluate.adherence(sd, guidance_scale, n=n, num_steps=num_steps)
        out.update({r: res[f"{r}_acc"] for r in ("colour", "shape") if r in rows})
    for row in ("side", "two_object"):
        if row in rows:
            out[row] = evaluate.row_accuracy(sd, row, guidance_scale, n=n, num_steps=num_steps)["acc"]
    out["seconds"] = evaluate.seconds_per_image(sd, repeats=3, num_steps=num_steps, guidance_scale=guidance_scale)
    out["params_million"] = n_params(sd.denoiser) / 1e6
    out["gflop_per_call"] = speed.denoiser_flops(sd) / 1e9
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sd3", default=SD3_NAME, help="the SD3 model: 'builtin-sd3' or an exported folder")
    ap.add_argument("--n", type=int, default=48, help="held-out prompts per row")
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows to measure")
    ap.add_argument("--sd3-only", action="store_true", help="measure the SD3 model only (a training probe)")
    ap.add_argument("--flow-only", action="store_true", help="measure the flow UNet only")
    ap.add_argument("--update", action="store_true", help="with --out: replace the measured model's figures in"
                    " that file (measured with the same --n and rows) and keep the other's")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    ap.add_argument("--loss-by-noise", action="store_true", help="print each model's loss at fixed noise"
                    " levels (loss_by_noise_level) instead of the rows")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = tuple(r for r in args.rows.split(",") if r)
    start = time.monotonic()
    if args.sd3_only and args.flow_only:
        raise SDLibError("--sd3-only and --flow-only exclude each other: leave both out to measure both models.")
    models = {FLOW_NAME: FLOW_NAME, SD3_NAME: args.sd3}
    models = {k: v for k, v in models.items() if not (args.sd3_only and k == FLOW_NAME or args.flow_only and k == SD3_NAME)}
    if args.loss_by_noise:
        for name, source in models.items():
            losses = loss_by_noise_level(load_sd(source, device="cpu"))
            print(f"{name}: " + ", ".join(f"sigma {s:g} {v:.3f}" for s, v in losses.items()), flush=True)
        return
    kept = {}
    if args.update:
        if not args.out or not Path(args.out).is_file():
            raise SDLibError(f"--update needs an existing --out file to update, got {args.out!r}.")
        old = json.loads(Path(args.out).read_text())
        if old["n"] != args.n or any(set(fig) & set(ROWS) != set(rows) for fig in old["models"].values()):
            raise SDLibError(f"--update: {args.out} was measured with n={old['n']} and other rows; measure both"
                             f" models again (without --update) or use its n and rows.")
        kept = {k: v for k, v in old["models"].items() if k not in models}
    figures = dict(kept)
    for name, source in models.items():
        steps, guidance = DEFAULTS[name]
        began = time.monotonic()
        figures[name] = measure(load_sd(source, device="cpu"), steps, guidance, args.n, rows)
        figures[name]["minutes"] = round((time.monotonic() - began) / 60, 1)
        print(f"{name} ({steps} steps, guidance {guidance}): " + ", ".join(
            f"{k} {v:.1%}" if k in ROWS else f"{k} {v:.2f}" for k, v in figures[name].items()), flush=True)
    minutes = (time.monotonic() - start) / 60
    print(f"{minutes:.1f} min")
    if args.out:
        figures = {k: figures[k] for k in (FLOW_NAME, SD3_NAME) if k in figures}
        Path(args.out).write_text(json.dumps({"n": args.n, "defaults": DEFAULTS, "floors": FLOORS, "models": figures},
                                             indent=1) + "\n")


if __name__ == "__main__":
    main()
