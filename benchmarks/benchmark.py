"""Speed and memory figures (printed, never asserted): run `.venv/bin/python benchmarks/benchmark.py`.

- sdlib.generate vs diffusers' StableDiffusionPipeline, same 25-step generation (goal: ratio <= 1.02)
- seconds per step, peak RSS
- wall time of executing every notebook on --model and --device (skip with --no-notebooks): the
  run times on the teacher's page (docs/teachers.md). On a Colab GPU, from the course folder:
  `HF_HUB_OFFLINE=0 python benchmarks/benchmark.py --model CompVis/stable-diffusion-v1-4 --device cuda`
"""
import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # the tables, not progress bars
import torch  # noqa: E402

import sdlib  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="builtin")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-notebooks", action="store_true")
    args = ap.parse_args()

    sd = sdlib.load_sd(args.model, device=args.device)
    print(f"model: {sd}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {sd.device}")
    prompt, steps = "a large red circle on the left", args.steps
    pipe = sd.pipeline()
    pipe.set_progress_bar_config(disable=True)

    def run_pipe():
        pipe(prompt, num_inference_steps=steps, guidance_scale=7.5,
             generator=torch.Generator("cpu").manual_seed(0))

    def run_sdlib():
        sdlib.generate(sd, prompt, num_steps=steps, guidance_scale=7.5, seed=0)

    # interleave the two so that machine noise hits both alike
    t_pipe, t_lib = [], []
    for _ in range(args.repeats):
        t_pipe.append(timed(run_pipe, 1))
        t_lib.append(timed(run_sdlib, 1))
    p, s = statistics.median(t_pipe), statistics.median(t_lib)
    print(f"pipeline      : {p:.3f} s for {steps} steps (median of {args.repeats})")
    print(f"sdlib.generate: {s:.3f} s for {steps} steps ({s / steps * 1000:.1f} ms/step)")
    print(f"ratio sdlib/pipeline: {s / p:.3f} (goal <= 1.02)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss:.0f} MB")

    if not args.no_notebooks:
        sys.path.insert(0, str(ROOT / "tools"))
        from execute_notebooks import execute

        # the model and device benchmarked above; a GPU run keeps every CPU thread (a CPU run has one,
        # as in the committed notebooks); HF_HUB_OFFLINE=0 lets a first GPU run download the model
        threads = "1" if args.device == "cpu" else str(os.cpu_count() or 1)
        notebook_env = {"SDLIB_MODEL": args.model, "SDLIB_DEVICE": args.device, "HF_HUB_OFFLINE":
                        os.environ["HF_HUB_OFFLINE"], "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        total = 0.0
        for nb in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
            seconds = execute(str(nb), write=False, env=notebook_env)
            total += seconds
            print(f"notebook {nb.name}: {seconds:.1f} s")
        print(f"all notebooks: {total:.1f} s")


if __name__ == "__main__":
    main()
