"""How far one loss_scale moves the picture under DDIM (VP latents) and Euler (VE latents).

    .venv/bin/python benchmarks/loss_guidance_ratio.py 1 10 30 100 300

The blue loss (`sdlib.guidance.blue_loss`) on 8 held-out prompts, 25 steps, guidance 7.5, every
step: the rise of the blue fraction over the unguided pictures, per sampler and scale, and the
DDIM / Euler ratio. `schedule.loss_guidance_step` takes the same step in both scales, so the ratio
is about 1 (measured 2026-11-25: 1.01 at 10 and 30, 0.99 at 100); with the old x_t - sigma^2 grad
step on VP latents it was 167 at scale 1.
"""
import sys

import torch

import sdlib
from sdlib import guidance as G
from sdlib.builtin import scenes


def main(scales):
    torch.set_num_threads(1)
    sd = sdlib.load_sd("builtin", device="cpu")
    prompts = [p for p, _ in scenes.eval_prompts(8, 0)]
    kw = dict(num_steps=25, guidance_scale=7.5, seed=0, output="tensor")
    rise = {}
    for name in ("ddim", "euler"):
        scheduler = sdlib.make_scheduler(name, sd.scheduler)
        plain = G.blue_fraction(sdlib.generate(sd, prompts, scheduler=scheduler, **kw)).mean().item()
        for s in scales:
            guided = sdlib.generate(sd, prompts, scheduler=scheduler, loss_fn=G.blue_loss, loss_scale=s,
                                    loss_every=1, **kw)
            rise[name, s] = G.blue_fraction(guided).mean().item() - plain
            print(f"{name:6s} loss_scale {s:7g}: blue fraction {plain:.3f} -> {plain + rise[name, s]:.3f}")
    for s in scales:
        euler = rise["euler", s]
        print(f"loss_scale {s:g}: DDIM / Euler rise {rise['ddim', s] / euler if euler else float('inf'):.3g}")


if __name__ == "__main__":
    main([float(s) for s in sys.argv[1:]] or [10.0, 30.0, 100.0])
