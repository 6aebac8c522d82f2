"""Where a picture's time goes: seconds and multiply-adds per part of the model.

One picture is a text-encoder call, `num_steps` UNet calls (on a batch of 2B with classifier-free
guidance) and one VAE decode. `time_parts` times each part during a real `generate` with forward
hooks (pre-hook: start the clock, hook: stop it), so the parts are the model's own modules:
the text encoder, the UNet's time embedding, conv_in, each down block, the middle block, each up
block, conv_out, and the VAE decoder. `flop_parts` counts the floating-point operations of one UNet
call per part (torch.utils.flop_counter: matrix products and convolutions, 2 per multiply-add),
which, unlike seconds, are the same on every machine.

    secs = sdlib.speed.time_parts(sd, "a red circle", num_steps=20)  # {"down_blocks.0": 0.47, ...}

Taught in notebooks/08, section 1.
"""
import json
import re
import time
from collections import defaultdict
from pathlib import Path

import torch

from ..checks import check_int
from ..errors import SDLibError
from ..models.load import check_sd


def _sync(sd):
    """Wait for the GPU's queued work (timings must include it); nothing to wait for on a CPU."""
    return torch.cuda.synchronize if sd.device.type == "cuda" else (lambda: None)


def _unet_inputs(sd, batch):
    """Stand-in inputs of one UNet call: latents (B, 4, h, w), t, text_emb (B, 77, D). Their values
    change neither the operations counted nor the time taken."""
    u = sd.unet
    side = u.config.sample_size
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(batch, u.config.in_channels, side, side, generator=g).to(sd.device, u.dtype)
    text_emb = torch.randn(batch, sd.tokenizer.model_max_length, u.config.cross_attention_dim,
                           generator=g).to(sd.device, u.dtype)
    return x_t, torch.tensor(500, device=sd.device), text_emb


def unet_parts(unet):
    """The UNet's top-level stages in the order its forward runs them: {name: module}.
    Taught in notebooks/08, section 1."""
    parts = {"time_embedding": unet.time_embedding, "conv_in": unet.conv_in}
    parts.update({f"down_blocks.{i}": b for i, b in enumerate(unet.down_blocks)})
    parts["mid_block"] = unet.mid_block
    parts.update({f"up_blocks.{i}": b for i, b in enumerate(unet.up_blocks)})
    parts["conv_out"] = unet.conv_out
    return parts


def model_parts(sd):
    """Every part `time_parts` times: the text encoder, the UNet's stages, the VAE decoder.
    Used by time_parts; taught in notebooks/08, section 1."""
    return {"text_encoder": sd.text_encoder, **unet_parts(sd.unet), "vae_decoder": sd.vae.decoder}


def time_parts(sd, prompt, num_steps=20, seed=0, **generate_kw):
    """Seconds spent in each part (`model_parts`) during one `sdlib.generate(sd, prompt, ...)`,
    plus "total" (the whole call) and "other" (the rest: scheduler, tokenizer, Python). Timings
    vary from run to run; call once before to warm up. Taught in notebooks/08, section 1."""
    from ..sampling.sampler import generate

    check_sd(sd)
    secs, started = defaultdict(float), {}
    sync = _sync(sd)

    def start(name):
        def pre_hook(module, args):
            sync()
            started[name] = time.perf_counter()
        return pre_hook

    def stop(name):
        def hook(module, args, out):
            sync()
            secs[name] += time.perf_counter() - started[name]
        return hook

    hooks = []
    for name, module in model_parts(sd).items():
        hooks += [module.register_forward_pre_hook(start(name)), module.register_forward_hook(stop(name))]
    try:
        began = time.perf_counter()
        generate(sd, prompt, num_steps=num_steps, seed=seed, **generate_kw)
        sync()
        total = time.perf_counter() - began
    finally:
        for h in hooks:
            h.remove()
    out = {name: secs[name] for name in model_parts(sd)}
    out["other"] = max(0.0, total - sum(out.values()))
    out["total"] = total
    return out


@torch.no_grad()
def flop_parts(sd, batch=2):
    """Floating-point operations of one UNet call on `batch` latents (2 = one guided picture),
    by part (`unet_parts`) and "total". The same on every machine. Taught in notebooks/08."""
    from torch.utils.flop_counter import FlopCounterMode

    check_sd(sd)
    x_t, t, text_emb = _unet_inputs(sd, batch)
    counter = FlopCounterMode(display=False)
    with counter:
        sd.unet(x_t, t, encoder_hidden_states=text_emb)
    counts = counter.get_flop_counts()
    root = type(sd.unet).__name__
    out = {name: sum(counts.get(f"{root}.{name}", {}).values()) for name in unet_parts(sd.unet)}
    out["total"] = counter.get_total_flops()
    return out


@torch.no_grad()
def denoiser_flops(sd, batch=2):
    """Floating-point operations of one call of the denoiser (the UNet, or SD3's transformer) on
    `batch` latents of the model's size, through the sampler's own call (`guided_output`), with the
    empty prompt's text (2 = one picture with classifier-free guidance). Text encoder and VAE not
    counted. The same on every machine. Taught in notebooks/11, section 1 (the UNet's parts: `flop_parts`)."""
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    from ..models.text import encode_text
    from ..sampling.guidance import guided_output

    check_sd(sd)
    batch = check_int("batch", batch, lo=1)
    scheduler = copy.deepcopy(sd.scheduler)
    scheduler.set_timesteps(1)
    side = sd.denoiser.config.sample_size
    x = torch.zeros(batch, sd.vae.config.latent_channels, side, side, dtype=sd.dtype, device=sd.device)
    text = encode_text(sd, [""] * batch)
    counter = FlopCounterMode(display=False)
    with counter:
        guided_output(sd, scheduler, x, scheduler.timesteps[0], text, 1.0)
    return counter.get_total_flops()


# Peak dense fp16/bf16 tensor-core throughput (TFLOP/s, without sparsity) from NVIDIA's data sheets,
# for the GPUs Colab and Kaggle offer, and the H100/H200; the compute bound of a step is its FLOPs / peak.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "T4": 65.0, "P100": 18.7, "V100": 125.0}


def peak_tflops(device_name):
    """PEAK_TFLOPS of a GPU by its name (torch.cuda.get_device_name()), or None if not listed.
    Taught in notebooks/08, section 6."""
    words = re.findall(r"[A-Za-z0-9]+", str(device_name))  # "NVIDIA L40S": "L40S" is not an "L4"
    return next((v for k, v in PEAK_TFLOPS.items() if k in words), None)


# ---------------------------------------------------------------- predicted GPU times
# Until a notebook is timed on a GPU, its time there is predicted: the FLOPs it runs on SD v1.4 at
# 512 px (benchmarks/predict_gpu.py counts every UNet, VAE and text-encoder call each notebook
# makes, on an SD v1.4 twin with the real step counts, and prices each at real size) divided by
# the throughput a GPU reaches on Stable Diffusion. That throughput is a fraction of the data
# sheet's peak (memory traffic, normalisation layers, kernel launches): REFERENCE, a published
# timing, gives the fraction, and the same fraction is assumed for every GPU.
GPU_PREDICTIONS = Path(__file__).resolve().parent.parent / "data" / "gpu_predictions.json"
TRAIN_FACTOR = 2  # a training call = its forward pass + a backward pass through frozen weights,
# which computes the activations' gradients only: about one more forward pass of FLOPs
REFERENCE = dict(gpu="A100", seconds=1.604, steps=50, what="SD v1.5, 512 px, 50 steps, fp16, diffusers with "
                 "PyTorch's fused attention, A100 80GB SXM", source="github.com/fal-ai/stable-diffusion-benchmarks")
PREDICTED_GPUS = ("T4", "A100")  # a free Colab / Kaggle GPU, and a large one
# Notebooks that benchmarks/predict_gpu.py does not price, and why: it prices SD v1.4's parts.
NOT_PREDICTED = {"11_sd3_in_miniature": "on a GPU it runs SD3 medium (or its miniature where the hub does not let "
                 "it), whose transformer benchmarks/predict_gpu.py does not price: it prices SD v1.4's parts"}


def gpu_predictions():
    """The counts benchmarks/predict_gpu.py wrote: TFLOP per call item at 512 px, each notebook's
    TFLOP and calls, the weights' and training activations' GB. A dict.
    Taught in notebooks/08, section 6."""
    return json.loads(GPU_PREDICTIONS.read_text())


def gpu_efficiency(pred=None):
    """The fraction of its fp16 peak a GPU reaches on Stable Diffusion, from REFERENCE: one
    guided picture is `steps` UNet calls on a batch of 2, one VAE decode and two prompts' text
    encoding; its TFLOP / (seconds x peak TFLOP/s). Taught in notebooks/08, section 6."""
    pred = pred or gpu_predictions()
    f = pred["tflop"]
    tflop = REFERENCE["steps"] * 2 * f["unet"] + f["vae_decode"] + 2 * f["text_encoder"]
    return tflop / (REFERENCE["seconds"] * PEAK_TFLOPS[REFERENCE["gpu"]])


def _check_gpu(gpu):
    if gpu not in PEAK_TFLOPS:
        raise SDLibError(f"gpu must be one of {', '.join(map(repr, PEAK_TFLOPS))}, got {gpu!r}.")
    return gpu


def predicted_minutes(gpus=PREDICTED_GPUS):
    """{notebook: {gpu: minutes}}: each notebook's predicted compute time on SD v1.4 (512 px, fp16)
    on each GPU: its TFLOP / (peak x gpu_efficiency). Loading and downloading the weights are not
    in it. Predictions, not measurements; taught in notebooks/08, section 6."""
    pred = gpu_predictions()
    gpus = [_check_gpu(g) for g in ([gpus] if isinstance(gpus, str) else gpus)]
    eff = gpu_efficiency(pred)
    return {name: {g: row["tflop"] / (PEAK_TFLOPS[g] * eff) / 60 for g in gpus}
            for name, row in pred["notebooks"].items()}


def predict_training(steps, batch_size=1, terms=1, gpu="T4"):
    """Predicted minutes and peak GPU memory (GB) of `steps` fine-tuning steps on SD v1.4 at 512 px
    in fp16 (textual inversion or DreamBooth-LoRA, notebooks/07), each step `terms` UNet calls
    (2 with DreamBooth's prior term) on `batch_size` latents, forward and backward.
    Memory: the weights + what autograd keeps for the backward pass of each term (counted on the
    meta device with fused attention, benchmarks/predict_gpu.py); the few trained parameters,
    CUDA's own context and the allocator's reserve come on top. A dict(minutes=, peak_gb=)."""
    steps = check_int("steps", steps, lo=1)
    batch_size = check_int("batch_size", batch_size, lo=1)
    terms = check_int("terms", terms, lo=1)
    pred = gpu_predictions()
    f, saved = pred["tflop"], pred["train_saved_gb"]
    tflop = steps * terms * batch_size * (f["unet"] + f["text_encoder"]) * TRAIN_FACTOR
    seconds = tflop / (PEAK_TFLOPS[_check_gpu(gpu)] * gpu_efficiency(pred))
    peak = pred["weights_gb"] + terms * (saved["fixed"] + saved["per_item"] * batch_size)
    return dict(minutes=seconds / 60, peak_gb=peak)


def prediction_assumptions():
    """The assumptions behind predicted_minutes and predict_training, in words, with the numbers.
    Taught in notebooks/08, section 6."""
    pred = gpu_predictions()
    f = pred["tflop"]
    return (f"Predicted, not measured: {pred['model']} at {pred['image_size']} px in fp16; per item (one "
            f"latent / picture / prompt): UNet {f['unet']:.2f} TFLOP, VAE decode {f['vae_decode']:.2f}, VAE encode "
            f"{f['vae_encode']:.2f}, text encoder {f['text_encoder']:.3f}; a training call counts {TRAIN_FACTOR} "
            f"forward passes. GPUs reach {gpu_efficiency(pred):.0%} of their fp16 peak (" +
            ", ".join(f"{g} {PEAK_TFLOPS[g]:.0f} TFLOP/s" for g in PREDICTED_GPUS) +
            f"), the fraction {REFERENCE['source']} measured ({REFERENCE['what']}: {REFERENCE['seconds']} s per "
            f"picture); not counted: loading the weights, the explorers (sliders), the cells that run only on a GPU "
            f"(08's fp16 / torch.compile timings, compiling included). Counted by `{pred['command']}`; "
            "measure on a GPU with `HF_HUB_OFFLINE=0 python benchmarks/benchmark.py --model "
            "CompVis/stable-diffusion-v1-4 --device cuda`.")


@torch.no_grad()
def ms_per_unet_step(sd, batch=2, repeats=10):
    """Median milliseconds of one UNet call on `batch` latents (2: one guided picture) with the
    model as it is (dtype, attention processor, memory format, compiled or not).
    Taught in notebooks/08, section 6."""
    import statistics

    check_sd(sd)
    x_t, t, text_emb = _unet_inputs(sd, batch)
    sync = _sync(sd)
    times = []
    for k in range(repeats + 3):  # 3 warm-ups (compilation happens in the first)
        sync()
        began = time.perf_counter()
        sd.unet(x_t, t, encoder_hidden_states=text_emb)
        sync()
        if k >= 3:
            times.append(1000 * (time.perf_counter() - began))
    return statistics.median(times)


def gpu_variants(sd, compile=True):
    """ms per guided UNet step for the usual ways of making SD fast on a GPU, each on top of the
    previous: fp32 with diffusers' plain attention; + fused attention (SDPA); + fp16; +
    channels_last; + torch.compile (on GPUs that PyTorch's compiler supports: compute capability 7.0
    and up, so not a P100). Returns {variant: ms}. Needs CUDA; the model is put back as
    it was afterwards. Taught in notebooks/08, section 6."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    check_sd(sd)
    if sd.device.type != "cuda":
        raise SDLibError("gpu_variants times CUDA kernels: load the model on a GPU (device='cuda').")
    u, out = sd.unet, {}
    dtype, processors = u.dtype, u.attn_processors
    try:
        u.to(torch.float32).set_attn_processor(AttnProcessor())
        out["fp32, plain attention"] = ms_per_unet_step(sd)
        u.set_attn_processor(AttnProcessor2_0())
        out["fp32, fused attention (SDPA)"] = ms_per_unet_step(sd)
        u.to(torch.float16)
        out["fp16, SDPA"] = ms_per_unet_step(sd)
        u.to(memory_format=torch.channels_last)
        out["fp16, SDPA, channels_last"] = ms_per_unet_step(sd)
        if compile and torch.cuda.get_device_capability(sd.device) >= (7, 0):  # Triton's oldest GPUs
            u.forward = torch.compile(u.forward, mode="max-autotune-no-cudagraphs")
            out["fp16, SDPA, channels_last, torch.compile"] = ms_per_unet_step(sd)
    finally:  # the model as it was
        u.__dict__.pop("forward", None)
        u.to(dtype=dtype, memory_format=torch.contiguous_format)
        u.set_attn_processor(processors)
    return out


def _judged(pictures, judge):
    """judge(pictures) -> {column: value}, the extra columns of a row (none without a judge)."""
    if judge is None:
        return {}
    row = judge(pictures)
    if not isinstance(row, dict):
        raise SDLibError(f"judge must return a dict of columns, such as checker.adherence(pictures, "
                         f"scenes), got {type(row).__name__}.")
    return row


def _check_judge(judge):
    if judge is not None and not callable(judge):
        raise SDLibError(f"judge must be None or a function of the pictures returning a dict of "
                         f"columns, got {type(judge).__name__}.")


def caching_table(sd, prompts, intervals=(1, 2, 3, 5), num_steps=20, batch=8, seed=0, branch=1,
                  judge=None):
    """Step caching every N steps (`step_cache.step_cache`), for each N in `intervals`, on the same
    prompts and seeds (batch k of `batch` prompts uses seed + k): {N: {"pictures", "seconds",
    "full_steps", "shallow_steps", "psnr" (dB, mean against the first interval's pictures),
    and the columns `judge(pictures)` returns (on the built-in model, the judge's accuracies:
    `lambda p: sdlib.builtin.checker.adherence(p, scenes)`)}}. The first interval
    is the reference: pass 1 first. Taught in notebooks/08, section 4; printed by
    benchmarks/step_cache.py."""
    from .metrics import psnr
    from ..sampling.sampler import generate
    from ..sampling.step_cache import step_cache

    check_sd(sd)
    _check_judge(judge)
    rows = {}
    for n in intervals:
        with step_cache(sd, interval=n, branch=branch) as fast:
            began = time.perf_counter()
            pictures = [p for k in range(0, len(prompts), batch)
                        for p in generate(fast, prompts[k:k + batch], seed=seed + k, num_steps=num_steps)]
            seconds = time.perf_counter() - began
            row = dict(pictures=pictures, seconds=seconds, full_steps=fast.unet.full_steps,
                       shallow_steps=fast.unet.shallow_steps)
        first = rows[next(iter(rows))]["pictures"] if rows else pictures
        row["psnr"] = float(psnr(pictures, first).mean())
        rows[n] = {**row, **_judged(pictures, judge)}
    return rows


def sampler_table(sd, prompts, samplers=("ddim", "euler", "dpm++"), step_counts=(5, 10, 25, 50),
                  reference=("dpm++", 100), seed=0, judge=None):
    """Each sampler at each step count against one reference run (sampler, steps), same prompts
    and noise: {(sampler, steps): {"pictures", "psnr" (dB, mean), "seconds", and the columns
    `judge(pictures)` returns}}, the reference run included (its PSNR is infinite). Samplers that solve
    the same ODE converge to one picture, so one reference serves all. Taught in notebooks/08, section 5; printed by benchmarks/step_cache.py."""
    from .metrics import psnr
    from ..sampling.sampler import generate

    check_sd(sd)
    _check_judge(judge)
    table, ref = {}, None
    for name, n in [tuple(reference)] + [(name, n) for name in samplers for n in step_counts]:
        began = time.perf_counter()
        pictures = generate(sd, prompts, seed=seed, num_steps=n, scheduler=name)
        seconds = time.perf_counter() - began
        ref = ref or pictures
        table[name, n] = dict(pictures=pictures, psnr=float(psnr(pictures, ref).mean()),
                              seconds=seconds, **_judged(pictures, judge))
    return table
