"""Step caching and fewer steps, printed (never asserted): `.venv/bin/python benchmarks/step_cache.py`.

- where one picture's time goes (seconds per part) and one UNet call's operations per part
- the caching table of notebooks/08: every N = 1, 2, 3, 5 steps, seconds per picture, speed-up,
  predicted UNet speed-up, PSNR against N = 1, the judge's adherence (built-in model)
- the sampler table: DDIM, Euler, DPM++ 2M at 5/10/25/50 steps against DPM++ 2M at 100
- on a GPU, ms per guided UNet step with fp16, SDPA, channels_last, torch.compile, and the bound

    --model builtin|<folder>|<hub id>  --device cpu|cuda  --prompts 24  --steps 20
"""
import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # the tables, not progress bars
import torch  # noqa: E402

import sdlib  # noqa: E402
from sdlib import speed, step_cache  # noqa: E402
from sdlib.builtin import checker, scenes  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--sweep-prompts", type=int, default=4)
    args = ap.parse_args()

    sd = sdlib.load_sd(args.model, device=args.device)
    builtin = sd.name == "builtin"
    print(f"model: {sd}")
    gpu = torch.cuda.get_device_name() if sd.device.type == "cuda" else None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {gpu or sd.device}")
    if builtin:
        items = scenes.eval_prompts(args.prompts, seed=0)
        prompts, judged = [p for p, _ in items], [s for _, s in items]
    else:
        prompts, judged = ["a photograph of an astronaut riding a horse"] * args.prompts, None

    speed.time_parts(sd, prompts[:args.batch], num_steps=3)  # warm-up
    secs = speed.time_parts(sd, prompts[:args.batch], num_steps=args.steps)
    flops = speed.flop_parts(sd)
    print(f"\nwhere the time goes ({args.batch} pictures, {args.steps} steps, {secs['total']:.2f} s):")
    for name, s in secs.items():
        share = f"{flops[name] / flops['total']:6.1%} of a UNet call's {flops['total'] / 1e9:.1f} GFLOP" \
            if name in flops and name != "total" else ""
        print(f"  {name:15} {s:7.3f} s {s / secs['total']:6.1%}   {share}")

    share = step_cache.shallow_share(flops, branch=1)
    rows = speed.caching_table(sd, prompts, (1, 2, 3, 5), num_steps=args.steps, batch=args.batch,
                               judge=(lambda pictures: checker.adherence(pictures, judged)) if judged else None)
    print(f"\nstep caching (DeepCache, branch 1: a shallow call is {share:.0%} of a full one), "
          f"{len(prompts)} prompts, {args.steps} steps:")
    print(f"  {'N':>2} {'s/picture':>9} {'speed-up':>8} {'predicted UNet':>14} {'PSNR vs N=1':>11} {'colour':>6} {'shape':>5}")
    for n, r in rows.items():
        print(f"  {n:2} {r['seconds'] / len(prompts):9.3f} {rows[1]['seconds'] / r['seconds']:8.2f} "
              f"{step_cache.predicted_speedup(share, n):14.2f} {r['psnr']:8.1f} dB "
              f"{r.get('colour_acc', float('nan')):6.0%} {r.get('shape_acc', float('nan')):5.0%}")

    sweep = prompts[:args.sweep_prompts]
    table = speed.sampler_table(sd, sweep, judge=(lambda pictures: checker.adherence(pictures, judged[:len(sweep)]))
                                if judged else None)
    print(f"\nsamplers against DPM++ 2M at 100 steps ({len(sweep)} prompts): PSNR dB / s per picture")
    for name in ("ddim", "euler", "dpm++"):
        print(f"  {name:>6} " + "  ".join(f"{n:2} steps {table[name, n]['psnr']:5.1f} dB "
                                          f"{table[name, n]['seconds'] / len(sweep):.2f} s" for n in (5, 10, 25, 50)))

    if gpu:
        peak = speed.peak_tflops(gpu)
        bound = 1000 * flops["total"] / (peak * 1e12) if peak else float("nan")
        print(f"\n{gpu}: guided UNet call {flops['total'] / 1e12:.2f} TFLOP, compute bound {bound:.2f} ms")
        for variant, ms in speed.gpu_variants(sd).items():
            print(f"  {variant:42} {ms:7.2f} ms per step, {ms / bound:5.1f} x the bound")


if __name__ == "__main__":
    main()
