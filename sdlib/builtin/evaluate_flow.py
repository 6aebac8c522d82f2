"""Measuring the built-in flow model beside the built-in eps model: adherence at 25 steps, and what
fewer steps cost each of them (notebooks/10, training/flow-builtin.md).

    python -m sdlib.builtin.evaluate_flow --n 48 --threads 1 --out runs/flow-eval.json

For each sampler (the flow model's Euler; the eps model's DDIM and DPM++) and each step count in
STEPS, on held-out colour+shape prompts at one seed each: the judge's colour and shape accuracy
(`sdlib.builtin.checker`), and the PSNR of the picture against the same sampler's own REFERENCE_STEPS
picture from the same noise (how close a few steps get to where many steps end). Straightness:
how far the model's x0 prediction moves while a 25-step run goes (`x0_travel`, 0 = straight).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..images import to_pil
from ..measure import metrics
from ..models.load import load_sd
from ..models.flow import FLOW_NAME
from ..sampling.sampler import generate
from . import checker, scenes

STEPS = (1, 2, 4, 8, 25)
REFERENCE_STEPS = 100
SAMPLERS = {"flow Euler": (FLOW_NAME, None), "eps DDIM": ("builtin", None), "eps DPM++": ("builtin", "dpm++")}


def pictures(sd, prompts, num_steps, scheduler=None, seed=0, guidance_scale=7.5, batch=16):
    """Image tensors (N, 3, H, W) for the prompts, the batch starting at item k from seed + k (so
    every step count starts from the same noise). Used by steps_table (notebooks/10, section 6)."""
    out = []
    for k in range(0, len(prompts), batch):
        out.append(generate(sd, list(prompts[k:k + batch]), num_steps=num_steps, scheduler=scheduler,
                            seed=seed + k, guidance_scale=guidance_scale, output="tensor"))
    return torch.cat(out)


def x0_travel(sd, prompt, num_steps=25, scheduler=None, seed=0, guidance_scale=7.5):
    """How straight one sampling path is: the model's x0 prediction at every step, and how far it
    moves from step to step (RMS over the latents), summed and divided by the RMS of the final
    latents. On a perfectly straight path the velocity never changes, so x0 = x_t - sigma v is the
    same at every step and the travel is 0; the more the path bends, the more x0_pred moves.
    Returns (travel, the per-step moves). Taught in notebooks/10, section 6."""
    preds = []
    final = generate(sd, prompt, num_steps=num_steps, scheduler=scheduler, seed=seed, guidance_scale=guidance_scale,
                     output="latents", callback=lambda step, t, sigma, x_t, eps, x0_pred: preds.append(x0_pred))
    moves = [float((b - a).pow(2).mean().sqrt()) for a, b in zip(preds, preds[1:] + [final])]
    return sum(moves) / float(final.pow(2).mean().sqrt()), moves


def steps_table(models, n=8, seed=0, steps=STEPS, guidance_scale=7.5, reference_steps=REFERENCE_STEPS,
                references=None):
    """{sampler: {steps: (colour acc, shape acc, mean PSNR vs own reference_steps picture)}} for the
    samplers of SAMPLERS on n held-out prompts; `models` maps a model name to its loaded bundle.
    references: a dict {sampler: pictures} to reuse and fill (each sampler's reference_steps
    pictures of these prompts). Taught in notebooks/10, section 6."""
    items = scenes.eval_prompts(n, seed)
    prompts, wanted = [p for p, _ in items], [sc for _, sc in items]
    references = {} if references is None else references
    table = {}
    for name, (model_name, scheduler) in SAMPLERS.items():
        sd = models[model_name]
        if name not in references:
            references[name] = pictures(sd, prompts, reference_steps, scheduler, seed, guidance_scale)
        table[name] = {}
        for k in steps:
            x = pictures(sd, prompts, k, scheduler, seed, guidance_scale)
            res = checker.adherence(to_pil(x), wanted)
            psnr = float(np.mean(np.atleast_1d(np.asarray(metrics.psnr(x, references[name])))))
            table[name][k] = (res["colour_acc"], res["shape_acc"], psnr)
    return table


def shift_sweep(sd, n=16, seed=0, shifts=(1.0, 2.0, 3.0, 4.0, 6.0), steps=(4, 8), guidance_scale=7.5,
                reference_steps=REFERENCE_STEPS):
    """{(steps, shift): mean PSNR} of the flow model `sd` on n held-out prompts against its own
    reference_steps picture: the shift moves where the steps go, not the path, so every shift is
    measured against the same picture. Chooses the shipped config's shift (training/flow-builtin.md);
    the sweep by hand: notebooks/10, section 5."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    prompts = [p for p, _ in scenes.eval_prompts(n, seed)]
    ref = pictures(sd, prompts, reference_steps, None, seed, guidance_scale)
    out = {}
    for k in steps:
        for s in shifts:
            sch = FlowMatchEulerDiscreteScheduler.from_config(sd.scheduler.config, shift=s)
            x = pictures(sd, prompts, k, sch, seed, guidance_scale)
            out[k, s] = float(np.mean(np.atleast_1d(np.asarray(metrics.psnr(x, ref)))))
    return out


def main(argv=None):
    from . import evaluate

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="held-out prompts of the steps table")
    ap.add_argument("--n-adherence", type=int, default=48, help="held-out prompts of the 25-step adherence row")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    ap.add_argument("--shifts-only", action="store_true", help="only the shift sweep (to choose the config's shift)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.monotonic()
    models = {name: load_sd(name, device="cpu") for name in ("builtin", FLOW_NAME)}
    sweep = shift_sweep(models[FLOW_NAME], args.n)
    for (k, s), db in sweep.items():
        print(f"flow, {k} steps, shift {s:g}: {db:.1f} dB vs its own {REFERENCE_STEPS}-step picture", flush=True)
    if args.shifts_only:
        return
    adherence = {name: evaluate.adherence(m, 7.5, n=args.n_adherence) for name, m in models.items()}
    for name, res in adherence.items():
        print(f"{name}: 25 steps, CFG 7.5, {res['n']} held-out prompts: colour {res['colour_acc']:.1%}, "
              f"shape {res['shape_acc']:.1%}", flush=True)
    table = steps_table(models, args.n)
    print(f"{'sampler':<11} {'steps':>5} {'colour':>7} {'shape':>6} {'PSNR vs own 100-step':>21}")
    for name, rows in table.items():
        for k, (c, s, p) in rows.items():
            print(f"{name:<11} {k:>5} {c:>6.0%} {s:>6.0%} {p:>18.1f} dB")
    travel = {name: x0_travel(models[m], "a purple triangle", scheduler=sch)[0] for name, (m, sch) in SAMPLERS.items()}
    print("x0_pred travel over a 25-step run (0 = straight):", {k: round(v, 2) for k, v in travel.items()})
    minutes = (time.monotonic() - start) / 60
    print(f"{minutes:.1f} min")
    if args.out:
        Path(args.out).write_text(json.dumps({"n_adherence": args.n_adherence, "adherence": adherence, "n": args.n,
                                              "table": table, "travel": travel, "minutes": round(minutes, 1),
                                              "shift": models[FLOW_NAME].scheduler.config.shift,
                                              "shift_sweep": {f"{k} steps, shift {s:g}": db for (k, s), db in sweep.items()}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
